from setuptools import find_packages, setup

setup(
    name="recbole-dlrrec",
    version="0.1.0",
    description="DLRREC (denoised LLM vectors + SWING contrastive learning) as a RecBole 1.2.1 plugin",
    # properties/ (the YAML defaults) stays at the top of the repository and ships inside the
    # package as recbole_dlrrec/properties/; recbole_dlrrec.config.paths.properties_dir() finds
    # it in either place (an editable install keeps it at the top).
    packages=find_packages(include=["recbole_dlrrec", "recbole_dlrrec.*"]) + ["recbole_dlrrec.properties"],
    package_dir={"recbole_dlrrec.properties": "properties"},
    package_data={"recbole_dlrrec.properties": ["*.yaml", "*/*.yaml"]},
    entry_points={"console_scripts": ["recbole-dlrrec = recbole_dlrrec.cli.main:main"]},
    python_requires=">=3.11",
    # RecBole itself is not here: it goes in with --no-deps (requirements-recbole.txt), because its
    # ray<=2.6.3 pin conflicts with the ray[tune] in requirements.txt.
    install_requires=[line.split("#")[0].strip() for line in open("requirements.txt") if line.split("#")[0].strip()],
    # onnx: the text encoder's optional onnxruntime backend (recbole_dlrrec/data/encode_onnx.py)
    extras_require={"dev": ["pytest>=8", "hypothesis>=6.100"], "onnx": ["onnxruntime>=1.17", "onnx>=1.15"]},
)
