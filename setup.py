"""The optional compiled part of lossdoctor (everything else is in pyproject.toml).

lossdoctor._cscan speeds up reading big HF console logs. It is optional: where no C compiler is found, the
build goes on without it and the pure-Python scanner (the same results, slower) is used.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "lossdoctor._cscan",
            sources=["lossdoctor/_cscan.c"],
            depends=["lossdoctor/_cscan_body.h"],
            optional=True,
        )
    ]
)
