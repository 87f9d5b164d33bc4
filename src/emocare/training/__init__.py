"""Training EmoCare's own expression model (``python -m emocare train``).

Beside ``vision/`` because it must crop faces exactly as the live path does: the training
crops come from the same detector and the same ``square_crop`` geometry. Training needs
PyTorch (``pip install torch==2.13.0``); the live path never imports it: the trained network
ships as ONNX and runs on onnxruntime (see ``vision/emocare_backend.py``).
"""
