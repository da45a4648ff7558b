"""The optional compiled part of lossdoctor (everything else is in pyproject.toml).

lossdoctor._cscan speeds up reading big HF console logs, lossdoctor._cmedian the rules' sliding medians. Both
are optional: where no C compiler is found, the build goes on without them and the pure-Python code (the same
results, slower) is used.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "lossdoctor._cscan",
            sources=["lossdoctor/_cscan.c"],
            depends=["lossdoctor/_cscan_body.h"],
            optional=True,
        ),
        Extension("lossdoctor._cmedian", sources=["lossdoctor/_cmedian.c"], optional=True),
    ]
)
