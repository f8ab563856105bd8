"""Build steps that pyproject.toml cannot declare.

1. Generate the protobuf/gRPC stubs from k0s_store/proto/*.proto (never
   edited by hand, never committed).
2. Compile every src_ext/<name>.pyx into k0s_store._ext.<name>.
"""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Command, Extension, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop

ROOT = Path(__file__).parent.resolve()


def generate_protos() -> None:
    from grpc_tools import protoc  # build-time dependency only

    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "k0s_store/proto").glob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{ROOT}",
        f"-I{include}",
        f"--python_out={ROOT}",
        f"--grpc_python_out={ROOT}",
    ]
    if protoc.main(args + protos) != 0:
        raise RuntimeError("protoc failed on " + " ".join(protos))


class GenerateProtos(Command):
    """`python setup.py generate_protos`: refresh the generated stubs."""

    user_options: list = []

    def initialize_options(self) -> None: ...

    def finalize_options(self) -> None: ...

    def run(self) -> None:
        generate_protos()


class BuildPy(build_py):
    def run(self) -> None:
        generate_protos()
        super().run()


class Develop(develop):
    def run(self) -> None:
        generate_protos()
        super().run()


# C libraries of the extensions that need them: (library, header, Debian package).
NATIVE_LIBRARIES = {
    "lmdb": [("lmdb", "lmdb.h", "liblmdb-dev")],
    "lmdb_kv": [("lmdb", "lmdb.h", "liblmdb-dev")],
    "h2server": [
        ("nghttp2", "nghttp2/nghttp2.h", "libnghttp2-dev"),
        ("ssl", "openssl/ssl.h", "libssl-dev"),
        ("crypto", "openssl/err.h", "libssl-dev"),
    ],
}


def libraries_of(stem: str) -> list[str]:
    """The libraries extension `stem` links; a missing header stops the build in one line."""
    needed = NATIVE_LIBRARIES.get(stem, [])
    for _, header, package in needed:
        if not any((Path(d) / header).exists() for d in ("/usr/include", "/usr/local/include")):
            raise SystemExit(f"{header} not found: install {package} (scripts/setup does)")
    return [library for library, _, _ in needed]


extensions = [
    Extension(
        f"k0s_store._ext.{pyx.stem}",
        [str(pyx.relative_to(ROOT))],
        extra_compile_args=["-O2"],
        libraries=libraries_of(pyx.stem),
    )
    for pyx in sorted((ROOT / "src_ext").glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=[str(ROOT / "src_ext")],
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False},
    ),
    cmdclass={"build_py": BuildPy, "develop": Develop, "generate_protos": GenerateProtos},
)
