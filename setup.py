"""Build steps that pyproject.toml cannot declare.

1. Generate the protobuf/gRPC stubs from k0s_store/proto/*.proto (never
   edited by hand, never committed), on every run where grpcio-tools is
   there (the build's isolated environment), and require runtimes at least
   as new as their generator.
2. Compile every src_ext/<name>.pyx into k0s_store._ext.<name>.
"""

import importlib.util
import re
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

ROOT = Path(__file__).parent.resolve()


# What the project needs at run time, but for the runtimes of the generated
# stubs: those follow the generator (see stub_runtimes).
REQUIREMENTS = [
    "lmdb>=1.4",
    "cryptography>=42",
    "bcrypt>=4.1",
    "prometheus_client>=0.20",
    "PyYAML>=6.0",
    "tqdm>=4.60",
]


def generate_protos() -> None:
    """Write the stubs with the grpcio-tools of the build environment."""
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


def stub_runtimes() -> list[str]:
    """grpcio and protobuf at least as new as what generated the stubs: the
    stubs refuse to import on older runtimes, and an existing environment
    keeps its old grpcio unless the requirement says otherwise."""
    proto = ROOT / "k0s_store/proto"
    if not (proto / "rpc_pb2_grpc.py").exists():
        raise SystemExit("k0s_store/proto has no stubs: build with grpcio-tools installed")
    grpc_stub = (proto / "rpc_pb2_grpc.py").read_text()
    message_stub = (proto / "rpc_pb2.py").read_text()
    grpcio = re.search(r"GRPC_GENERATED_VERSION = '([^']+)'", grpc_stub)
    protobuf = re.search(r"# Protobuf Python Version: (\S+)", message_stub)
    if grpcio is None or protobuf is None:
        raise SystemExit("k0s_store/proto: the generated stubs carry no generator version")
    return [f"grpcio>={grpcio[1]}", f"protobuf>={protobuf[1]}"]


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

# A rebuild in place from the project's own environment (`setup.py build_ext
# --inplace`) has no grpcio-tools: it keeps the stubs the install wrote.
if importlib.util.find_spec("grpc_tools") is not None:
    generate_protos()

setup(
    ext_modules=cythonize(
        extensions,
        include_path=[str(ROOT / "src_ext")],
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False},
    ),
    install_requires=REQUIREMENTS + stub_runtimes(),
)
