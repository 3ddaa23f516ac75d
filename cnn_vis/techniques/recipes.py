"""Two later recipes that make optimised images recognisable, shared by class models
(cnn_vis.techniques.class_model) and activation maximisation (activation_max) as presets: plain
dicts of their settings (objective weights, optimiser, parameterisation, transforms, projections).

- LUCID: Olah, Mordvintsev & Schubert 2017 ("Feature visualization", Distill; lucid's
  `render_vis` defaults with `transform.standard_transforms`, docs/papers.md §16): a 1/f-scaled
  Fourier parameterisation in a decorrelated colour basis behind a sigmoid (init std 0.01),
  robustness to pad 12 (grey), jitter 8, scale 0.95-1.05, rotation -10..10 degrees and jitter 4
  redrawn every step, Adam lr 0.05, 512 steps, no image prior. Differences from lucid: rotation
  angles uniform over -10..10 (lucid adds five extra zeros), jitter is a wrap-around roll, the
  transformed image is centre-cropped back to the input size.
- CS231N: CS231n assignment 3's class visualisation (docs/papers.md §12): L2 1e-3, learning rate
  25, a Gaussian blur of sigma 0.5 every 10 steps, random rolls of up to 16 px, 100 iterations,
  clamping to the valid pixel range, start from randn. The assignment works in the normalised
  space x_n = (x - mean) / std of torchvision's ImageNet statistics (std ~ 0.226, the mean of
  0.229, 0.224, 0.225) and leaves the step rule to the student; we take the normalised step its
  fooling-image part prescribes, dX = lr g / ||g||_2: the raw step x_n += lr dS/dx_n that many
  solutions write depends on the network's gradient scale: converted to our pixels (sgd at lr
  25 std^2 = 1.28) it turns SqueezeNet 1.1's class models into clipped, saturated noise of which
  2 of 10 are top-1 on that net (128 px, 100 steps; repo measurement). In our [0, 1] pixels (x = mean + std x_n) at
  224 px that step is a root-mean-square 25 * 0.226 / sqrt(224 * 224 * 3) = 0.0146 per pixel
  entry (optimizer `rms`, any size), the L2 weight is 1e-3 / std^2 = 0.0196 on ||x - mean||^2,
  and the start mean + 0.226 N(0, 1).
"""
from cnn_vis.techniques import optimize

LUCID_TRANSFORMS = (("pad", 12), ("jitter", 8),
                    ("scale", tuple(1 + (i - 5) / 50 for i in range(11))),
                    ("rotate", tuple(range(-10, 11))), ("jitter", 4))
LUCID = dict(param=optimize.Param("fourier", decorrelate=True, sigmoid=True, init_std=0.01),
             transforms=LUCID_TRANSFORMS, steps=512, optimizer="adam", lr=0.05)

CS231N_STD = 0.226   # torchvision's ImageNet std, averaged over channels: CS231n's pixel unit
CS231N = dict(l2=1e-3 / CS231N_STD ** 2, lr=25 * CS231N_STD / (224 * 224 * 3) ** 0.5, steps=100,
              optimizer="rms", transforms=(("jitter", 16),), blur_width=0.5, blur_every=10,
              clip=True, init_std=CS231N_STD)
