"""Python gRPC stubs for proto/, generated into a folder at run time with
grpc_tools (never committed, so they cannot drift from the proto). Shared by
tests/python/test_client.py and benches/baseline/server.py."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def generate(out_dir):
    """Writes article_analyzer/v1/analyzer_pb2{,_grpc}.py under out_dir and
    puts out_dir on sys.path, so `from article_analyzer.v1 import ...` works."""
    import grpc_tools
    from grpc_tools import protoc

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main([
        "protoc",
        f"-I{os.path.join(ROOT, 'proto')}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        "article_analyzer/v1/analyzer.proto",
    ])
    if rc != 0:
        raise RuntimeError("protoc failed on proto/article_analyzer/v1/analyzer.proto")
    for d in ["article_analyzer", "article_analyzer/v1"]:
        open(os.path.join(out_dir, d, "__init__.py"), "a").close()
    sys.path.insert(0, out_dir)
