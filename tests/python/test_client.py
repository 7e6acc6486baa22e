"""A second language can call the service: Python grpcio with stubs generated
from proto/ at test time.

Usage: python3 tests/python/test_client.py BINARY MODELS_DIR
It starts `BINARY serve` on a free port, waits for health SERVING, then calls
GetModels, AnalyzeDocument and Analyze and checks what comes back.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

import grpc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def generate_stubs(out_dir):
    sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
    from grpc_stubs import generate

    generate(out_dir)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_serving(channel, timeout=60):
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: F401

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
            if resp.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    raise AssertionError("server never became SERVING")


def main():
    binary, models = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        generate_stubs(tmp)
        from article_analyzer.v1 import analyzer_pb2 as pb
        from article_analyzer.v1 import analyzer_pb2_grpc as rpc

        port = free_port()
        server = subprocess.Popen([binary, "serve", "--addr", f"127.0.0.1:{port}", "--models", models, "--no-metrics"])
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            wait_serving(channel)
            stub = rpc.ArticleAnalyzerStub(channel)

            models_resp = stub.GetModels(pb.GetModelsRequest(), timeout=10)
            ner = [m for m in models_resp.models if m.task == "ner"][0]
            assert (ner.name, ner.version) == ("en_core_web_sm", "3.8.0"), ner

            text = "“Zürich” welcomed Angela Merkel and Emmanuel Macron on Monday, says Reuters. 🎉"
            doc = stub.AnalyzeDocument(pb.AnalyzeRequest(request_id="py-1", text=text), timeout=30)
            assert doc.request_id == "py-1"
            mentions = [m for s in doc.sentences for m in s.entities]
            names = {m.text for m in mentions}
            assert "Angela Merkel" in names, names
            for m in mentions:
                assert text[m.span.start_char:m.span.end_char] == m.text, m
                assert text.encode()[m.span.start_byte:m.span.end_byte].decode() == m.text, m

            kinds = [ev.WhichOneof("event") for ev in stub.Analyze(pb.AnalyzeRequest(request_id="py-2", text=text), timeout=30)]
            assert kinds[0] == "started" and kinds[-1] == "completed", kinds
            assert "sentence" in kinds and "entities" in kinds, kinds

            try:
                stub.AnalyzeDocument(pb.AnalyzeRequest(text=""), timeout=10)
                raise AssertionError("empty text must fail")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
            # grpcurl speaks only reflection v1alpha; it must find the API.
            listed = subprocess.run(["grpcurl", "-plaintext", f"127.0.0.1:{port}", "list"],
                                    capture_output=True, text=True, timeout=30)
            assert listed.returncode == 0, listed.stderr
            assert "article_analyzer.v1.ArticleAnalyzer" in listed.stdout.split(), listed.stdout
            described = subprocess.run(["grpcurl", "-plaintext", f"127.0.0.1:{port}", "describe",
                                        "article_analyzer.v1.ArticleAnalyzer"],
                                       capture_output=True, text=True, timeout=30)
            assert "rpc AnalyzeStream" in described.stdout, described.stdout + described.stderr
            print("python-client: 5 passed, 0 failed")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
