"""Augmentation of grey face crops, in NumPy and OpenCV (no PyTorch), one batch at a time.

What a webcam does to a face that the training photos rarely show: a head tilted or off
centre, nearer or farther, dim or harsh light, blur from motion or focus, a hand or glasses
over part of the face. Each is drawn at random, from ``rng`` only, so a seed fixes them all.
"""

from __future__ import annotations

import cv2
import numpy as np


def augment(batch: np.ndarray, rng: np.random.Generator, side: int) -> np.ndarray:
    """Random flip, rotation, scale, shift, light, blur and occlusion; float32 in [0, 255]."""
    out = np.empty((len(batch), side, side), dtype=np.float32)
    source = batch.shape[1]
    for i, image in enumerate(batch):
        angle = rng.uniform(-15, 15)
        scale = rng.uniform(0.88, 1.12) * side / source
        matrix = cv2.getRotationMatrix2D((source / 2, source / 2), angle, scale)
        matrix[:, 2] += (side - source) / 2 + rng.uniform(-0.08, 0.08, size=2) * side
        warped = cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if rng.random() < 0.5:
            warped = warped[:, ::-1]
        face = warped.astype(np.float32)
        if rng.random() < 0.15:
            face = cv2.GaussianBlur(face, (3, 3), rng.uniform(0.5, 1.2))
        # contrast around the mean, then brightness, then a mild gamma
        mean = face.mean()
        face = (face - mean) * rng.uniform(0.7, 1.3) + mean + rng.uniform(-25, 25)
        face = 255.0 * (np.clip(face, 0, 255) / 255.0) ** rng.uniform(0.8, 1.25)
        if rng.random() < 0.25:
            h, w = (rng.uniform(0.15, 0.4, size=2) * side).astype(int)
            y, x = rng.integers(0, side - h), rng.integers(0, side - w)
            face[y : y + h, x : x + w] = rng.uniform(0, 255)
        out[i] = face
    return out


def resize(batch: np.ndarray, side: int) -> np.ndarray:
    """The crops at the network's input size, without augmentation (validation, export)."""
    if batch.shape[1] == side:
        return batch.astype(np.float32)
    return np.stack([cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA) for image in batch]).astype(
        np.float32
    )
