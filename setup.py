from setuptools import find_packages, setup

setup(
    name="minidnn-admm",
    version="0.1.0",
    description="A from-scratch autograd/conv engine and ADMM structured weight pruning (StructADMM)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["minidnn", "minidnn.*", "admm", "admm.*", "kernels", "kernels.*"]),
    package_data={"admm": ["configs/*.yaml", "configs/*.json"], "kernels": ["*.cu", "cuda/*.cu"]},
    install_requires=["numpy>=1.24", "numba>=0.58", "matplotlib>=3.6", "tqdm>=4.60", "pyyaml>=6.0"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6", "threadpoolctl>=3", "nbformat>=5", "nbclient>=0.8",
                 "ipykernel>=6"],
        "cuda12x": ["cupy-cuda12x>=13"],
        "cuda13x": ["cupy-cuda13x>=14"],
    },
    entry_points={"console_scripts": ["minidnn-admm=admm.__main__:main"]},
)
