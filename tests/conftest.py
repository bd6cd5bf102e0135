import os

# Two cores on CI: keep torch from oversubscribing when pytest and data loading share them.
os.environ.setdefault("OMP_NUM_THREADS", "2")
