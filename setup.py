from setuptools import find_packages, setup

setup(
    name="recbole-dlrrec",
    version="0.1.0",
    description="DLRREC (denoised LLM vectors + SWING contrastive learning) as a RecBole 1.2.1 plugin",
    packages=find_packages(include=["recbole_dlrrec", "recbole_dlrrec.*"]),
    python_requires=">=3.10",
    # RecBole itself is not here: it goes in with --no-deps (requirements-recbole.txt), because its
    # ray<=2.6.3 pin conflicts with the ray[tune] in requirements.txt.
    install_requires=[line.split("#")[0].strip() for line in open("requirements.txt") if line.split("#")[0].strip()],
    extras_require={"dev": ["pytest>=8", "hypothesis>=6.100"]},
)
