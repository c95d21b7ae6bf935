"""Write the TensorRT Python API reference the fake in tests/fakes/tensorrt.py is checked against.

TensorRT cannot be installed on machines without NVIDIA's index, but PyPI's
`tensorrt-cu13-bindings` wheel holds the real pybind11 extension. It links only a handful of C
entry points of libnvinfer/libnvonnxparser (the rest of the API is virtual), so three stub
libraries that define those symbols let the real module import; pybind11 then reports the true
signature of every class, method, property and enum. Nothing is called.

    python tests/trt_reference/extract.py   # downloads the wheel, builds the stubs with gcc
"""
import inspect
import re
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
STUB_INFER = """
void* createInferBuilder_INTERNAL(void* a, int b) { return 0; }
void* createInferRefitter_INTERNAL(void* a, void* b, int c) { return 0; }
void* createInferRuntime_INTERNAL(void* a, int b) { return 0; }
void* getPluginRegistry(void) { return 0; }
void* getBuilderPluginRegistry(int a) { return 0; }
int initLibNvInferPlugins(void* a, const char* b) { return 0; }
"""
STUB_ONNX = """
void* createNvOnnxParser_INTERNAL(void* a, void* b, int c) { return 0; }
void* createNvOnnxParserRefitter_INTERNAL(void* a, void* b, int c) { return 0; }
int getNvOnnxParserVersion(void) { return 0; }
"""


def _signatures(doc: str | None, name: str) -> list[str]:
    """pybind11's signature lines (one, or one per overload), with the module prefix dropped."""
    lines = [line.strip() for line in (doc or "").splitlines()]
    sigs = [re.sub(r"^\d+\. ", "", line) for line in lines
            if re.match(rf"^(\d+\. )?{re.escape(name)}\(", line)]
    return [s.replace("tensorrt_bindings.tensorrt.", "").replace("tensorrt_bindings.", "") for s in sigs]


def describe(module) -> dict:
    api = {"functions": {}, "classes": {}}
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_"):
            continue
        if inspect.isclass(obj):
            members = {}
            for attr, value in sorted(vars(obj).items()):
                if attr.startswith("_") and attr not in ("__init__",):
                    continue
                if isinstance(value, property):
                    members[attr] = {"kind": "property", "settable": value.fset is not None,
                                     "type": _signatures(value.fget.__doc__, "") or None}
                elif callable(value) or type(value).__name__ in ("instancemethod", "builtin_function_or_method"):
                    members[attr] = {"kind": "method", "signatures": _signatures(value.__doc__, attr)}
                elif isinstance(value, obj):  # enum member
                    members[attr] = {"kind": "enum_member"}
                else:
                    members[attr] = {"kind": type(value).__name__}
            api["classes"][name] = members
        elif callable(obj):
            api["functions"][name] = _signatures(getattr(obj, "__doc__", ""), name)
    return api


def main() -> None:
    work = Path(tempfile.mkdtemp())
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "tensorrt-cu13-bindings", "-d", str(work)], check=True)
    wheel = next(work.glob("tensorrt_cu13_bindings-*.whl"))
    zipfile.ZipFile(wheel).extractall(work / "site")
    for lib, source in (("libnvinfer.so.11", STUB_INFER), ("libnvinfer_plugin.so.11", STUB_INFER),
                        ("libnvonnxparser.so.11", STUB_ONNX)):
        (work / "stub.c").write_text(source)
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(work / lib), str(work / "stub.c")], check=True)
    code = ("import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import tensorrt_bindings as trt; "
            "from extract import describe; print(json.dumps({'version': trt.__version__, **describe(trt.tensorrt)}))")
    proc = subprocess.run([sys.executable, "-c", code, str(work / "site"), str(HERE)], capture_output=True,
                          text=True, env={"LD_LIBRARY_PATH": str(work), "PATH": "/usr/bin:/bin"})
    if proc.returncode:
        sys.exit(proc.stderr)
    out = proc.stdout
    api = json.loads(out)
    target = HERE / "tensorrt_api.json"
    target.write_text(json.dumps({"source": wheel.name, **api}, indent=1, sort_keys=True) + "\n")
    print(f"{target}: {len(api['classes'])} classes from {wheel.name}")


if __name__ == "__main__":
    main()
