"""Builds the optional C kernel cnnlab.compress._binconv (XNOR + popcount convolution).

The metadata lives in pyproject.toml. The extension needs only a C compiler (no torch at
build time); OpenMP is used when the compiler has it. If the build fails the package still
installs and cnnlab falls back to a vectorised torch path (cnnlab/compress/binary_kernel.py).
"""

import platform

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ARCH = ["-mpopcnt"] if platform.machine().lower() in ("x86_64", "amd64") else []


class BuildExt(build_ext):
    def build_extension(self, ext):
        base = list(ext.extra_compile_args)
        for omp in (["-fopenmp"], []):  # with OpenMP threads if the compiler has it
            ext.extra_compile_args = base + omp
            ext.extra_link_args = list(omp)
            try:
                return super().build_extension(ext)
            except Exception as e:  # noqa: BLE001 - any compiler failure: try without
                self.warn(f"building {ext.name} {' '.join(omp) or 'without OpenMP'} failed: {e}")
        self.warn(f"{ext.name} not built; cnnlab uses its torch fallback")


setup(
    ext_modules=[Extension("cnnlab.compress._binconv", ["cnnlab/compress/_binconv.c"],
                           extra_compile_args=["-O3", *ARCH], optional=True)],
    cmdclass={"build_ext": BuildExt},
)
