"""A simulator in a box: save a trained model, share the file, and run it elsewhere.

:func:`sklss.io.save` writes a fitted estimator to one file that holds only data (network
weights in safetensors, arrays, JSON), and :func:`sklss.io.load` rebuilds it without
unpickling anything, so a model file from someone else cannot run code. A loaded model
samples exactly as the saved one did. The command line does the same with model folders:
``sklss fit`` trains and saves, ``sklss sample`` generates.

Run with SKLSS_SMALL=1 for a tiny version (seconds, meaningless numbers).
"""

import os

import numpy as np

from sklss import CWGANDecoder, LatentSpaceSimulator, MDNPropagator, SRVTransformer
from sklss.cli import main as sklss_command
from sklss.datasets import hidden_wells
from sklss.io import load, save

SMALL = os.environ.get("SKLSS_SMALL") == "1"
N_FRAMES = 500 if SMALL else 25_000  # per trajectory
MAX_EPOCHS = 1 if SMALL else 30

# 1. Train a full simulator: features -> latent space -> features.
X = hidden_wells(N_FRAMES, n_trajectories=4, random_state=0)
lss = LatentSpaceSimulator(
    SRVTransformer(n_components=2, max_epochs=MAX_EPOCHS),
    MDNPropagator(n_kernels=12, max_epochs=MAX_EPOCHS),
    CWGANDecoder(max_epochs=MAX_EPOCHS),
    lag_time=5,
    random_state=0,
).fit(X)

# 2. Save it to one file, and load it back, as a colleague would.
save(lss, "hidden_wells.sklss")
print(f"hidden_wells.sklss: {os.path.getsize('hidden_wells.sklss') / 1e6:.1f} MB")
box = load("hidden_wells.sklss")

# 3. The loaded simulator generates exactly what the original does.
starts = np.stack([x[0] for x in X])
original = lss.sample(starts, n_steps=200, random_state=7)
loaded = box.sample(starts, n_steps=200, random_state=7)
print("identical samples:", np.array_equal(original.configurations, loaded.configurations))

# 4. The same from the command line (here called from Python): fit from a .npy file of
#    shape (n_trajectories, n_frames, n_features), then sample 8 trajectories to a file.
np.save("features.npy", np.stack(X))
sklss_command(
    ["fit", "--features", "features.npy", "--lag-time", "5", "--max-epochs", str(MAX_EPOCHS)]
    + ["--n-kernels", "12", "--output", "box", "--verbose", "0"]
)
sklss_command(["sample", "box", "-n", "8", "--n-steps", "500", "-o", "samples.npy"])
print("samples.npy:", np.load("samples.npy").shape)  # (8, 500, 20)
