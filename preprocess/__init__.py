"""Face alignment preprocessing: `python -m preprocess align --dataset ... --src ... --dst ...`.

MTCNN (facenet-pytorch) finds 5 landmarks per face; a least-squares similarity maps them onto
the ArcFace 5-point template scaled to the output size; the warped face is written in the
layout the dataset loaders read. See preprocess/README.md for the policies.
"""
