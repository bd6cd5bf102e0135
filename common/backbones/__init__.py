"""Face backbones that more than one model builds on, written once.

POSTER and POSTER++ both use the same IR-50 image backbone (an ArcFace "improved ResNet-50"
trained on MS-Celeb, file ir50.pth) and the same MobileFaceNet landmark network (68 facial
landmarks, file mobilefacenet_model_best.pth.tar), and end in the same SE gate + linear head
(poster_head.py). DESIGN keeps model code in models/<name>/,
but code that several models use lives once in common/, so a fix to these networks or to the
loading of their published weights (the `body.N` -> three-body remap, strict landmark loading,
the frozen landmark branch staying in eval mode) reaches every model that uses them.

Each model keeps the authors' state-dict key names: the modules here are built so that the
attribute names match the authors' classes, and `IR50(split=...)` produces either key layout.
"""
