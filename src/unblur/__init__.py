"""unblur: blind deblurring of photos and videos.

Synthesize realistic blur, estimate an unknown blur kernel, remove it, and measure how well that
worked. The core works on ``(B, C, H, W)`` float32 torch tensors in ``[0, 1]``; public functions
also accept numpy arrays (see :mod:`unblur._tensor` for the conventions).
"""
__version__ = "0.1.0"
