#!/usr/bin/env python3
"""The Python baseline for scripts/bench-service: a grpcio server with the
same proto (article_analyzer.v1), backed by Python spaCy en_core_web_sm.

It does the work our server does with stance disabled: the spaCy
components our server runs (COMPONENTS, as our `GetModels` lists them, for
example `tokenizer,tok2vec,parser,ner` or `tokenizer,ner,sentencizer`; the
package's other components are excluded), then sentences with their
entities (char and byte spans), entities grouped by label and text, and the
counts. It serves AnalyzeDocument, Analyze and
GetModels, plus grpc.health.v1 (NOT_SERVING until the model is loaded).

Given the learned stance model (STANCE_BASE, the all-MiniLM-L6-v2
directory, and STANCE_ADAPTER, our adapter's), it also answers stance
through transformers (benches/baseline/stance.py) unless the request
disables it; BASELINE_TORCH_SITE names the site-packages that holds torch
and transformers. Without them, stance is not implemented.

Usage: server.py MODEL_DIR ADDR [THREADS [COMPONENTS [STANCE_BASE STANCE_ADAPTER]]]
Stubs are generated at start-up from proto/ with grpc_tools.
"""
import os
import sys
import tempfile
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVICE = "article_analyzer.v1.ArticleAnalyzer"


def generate_stubs(out_dir):
    sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
    from grpc_stubs import generate

    generate(out_dir)


def main():
    model_dir, addr = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    components = (sys.argv[4] if len(sys.argv) > 4 else "tokenizer,ner,sentencizer").split(",")
    stance_dirs = sys.argv[5:7] if len(sys.argv) > 6 else None
    tmp = tempfile.mkdtemp(prefix="baseline-stubs-")
    generate_stubs(tmp)
    from article_analyzer.v1 import analyzer_pb2 as pb
    from article_analyzer.v1 import analyzer_pb2_grpc as rpc

    health_servicer = health.HealthServicer()
    for name in ("", SERVICE):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads),
                         options=[("grpc.max_receive_message_length", 8 * 1024 * 1024),
                                  ("grpc.max_send_message_length", 8 * 1024 * 1024)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    state = {}

    class Analyzer(rpc.ArticleAnalyzerServicer):
        def models(self):
            nlp = state["nlp"]
            out = [pb.ModelInfo(task="ner", name="en_core_web_sm", version=nlp.meta["version"],
                                backend="spacy-python", labels=list(nlp.get_pipe("ner").labels),
                                components=components)]
            if "stance" in state:
                info = state["stance"].info
                out.append(pb.ModelInfo(task="stance", name=info["name"], version=info["version"],
                                        backend="transformers", sha256=info["sha256"],
                                        labels=["FAVOR", "AGAINST", "NEUTRAL"]))
            return out

        def stances(self, request, doc, groups, span):
            options = request.options if request.HasField("options") else None
            if "stance" not in state or (options is not None
                                         and options.stance.mode == pb.StanceOptions.DISABLED):
                return []
            model = state["stance"]
            label_of = {"FAVOR": pb.FAVOR, "AGAINST": pb.AGAINST, "NEUTRAL": pb.NEUTRAL}
            out = []
            for target, label, score, favor, against, neutral, evidence in model.classify(
                    doc, model.targets(options, groups)):
                out.append(pb.Stance(
                    target=target, label=label_of[label], score=score, favor=favor,
                    against=against, neutral=neutral,
                    evidence=[pb.Evidence(
                        span=span(sent.start_char, sent.end_char), text=sent.text,
                        contribution=z, reason="model",
                        mentions=[span(sent.start_char + a, sent.start_char + b)
                                  for a, b in mentions])
                        for sent, mentions, z in evidence]))
            return out

        def analyze(self, request, context):
            if "nlp" not in state:
                context.abort(grpc.StatusCode.UNAVAILABLE, "models are still loading")
            text = request.text
            if not text.strip():
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "text is empty")
            started = time.perf_counter()
            doc = state["nlp"](text)
            ner_ms = (time.perf_counter() - started) * 1e3
            # Char -> byte offsets.
            byte_at = [0] * (len(text) + 1)
            b = 0
            for i, ch in enumerate(text):
                byte_at[i] = b
                b += len(ch.encode("utf-8"))
            byte_at[len(text)] = b

            def span(start, end):
                return pb.Span(start_char=start, end_char=end,
                               start_byte=byte_at[start], end_byte=byte_at[end])

            labels = set(request.options.entity_labels) if request.HasField("options") else set()
            sentences, groups, mentions = [], {}, 0
            for index, sent in enumerate(doc.sents):
                ents = []
                for e in sent.ents:
                    if labels and e.label_ not in labels:
                        continue
                    ents.append(pb.EntityMention(text=e.text, label=e.label_,
                                                 span=span(e.start_char, e.end_char)))
                    groups.setdefault((e.label_, e.text.lower()), []).append(e)
                    mentions += 1
                sentences.append(pb.Sentence(index=index, span=span(sent.start_char, sent.end_char),
                                             text=sent.text, entities=ents))
            entities = [pb.Entity(canonical_text=max((m.text for m in ms), key=len), label=label,
                                  mention_count=len(ms),
                                  spans=[span(m.start_char, m.end_char) for m in ms])
                        for (label, _), ms in groups.items()]
            stances = self.stances(request, doc, groups, span)
            total_ms = (time.perf_counter() - started) * 1e3
            completed = pb.Completed(sentence_count=len(sentences), token_count=len(doc),
                                     mention_count=mentions, entity_count=len(entities),
                                     stance_count=len(stances),
                                     timings=[pb.StageTiming(stage="ner", ms=ner_ms)],
                                     total_ms=total_ms)
            return request.request_id or "baseline", sentences, entities, stances, completed

        def AnalyzeDocument(self, request, context):
            rid, sentences, entities, stances, completed = self.analyze(request, context)
            return pb.AnalyzeResponse(request_id=rid, models=self.models(), sentences=sentences,
                                      entities=entities, stances=stances, completed=completed)

        def Analyze(self, request, context):
            rid, sentences, entities, stances, completed = self.analyze(request, context)
            yield pb.AnalyzeEvent(request_id=rid, started=pb.Started(models=self.models()))
            for s in sentences:
                yield pb.AnalyzeEvent(request_id=rid, sentence=s)
            yield pb.AnalyzeEvent(request_id=rid, entities=pb.Entities(entities=entities))
            for s in stances:
                yield pb.AnalyzeEvent(request_id=rid, stance=s)
            yield pb.AnalyzeEvent(request_id=rid, completed=completed)

        def GetModels(self, request, context):
            return pb.GetModelsResponse(models=self.models())

    rpc.add_ArticleAnalyzerServicer_to_server(Analyzer(), server)
    server.add_insecure_port(addr)
    server.start()

    import spacy

    package = ["tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer", "ner"]
    nlp = spacy.load(model_dir, exclude=[c for c in package if c not in components])
    if "sentencizer" in components:
        nlp.add_pipe("sentencizer", first=True)
    missing = [c for c in components if c != "tokenizer" and c not in nlp.pipe_names]
    if missing:
        sys.exit(f"baseline: components {missing} are not in {model_dir}")
    nlp("Warm up.")
    if stance_dirs:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from stance import Stance

        model = Stance(*stance_dirs, os.environ.get("BASELINE_TORCH_SITE"))
        model.classify(nlp("Warm up with Russia."), ["Russia"])
        state["stance"] = model
    state["nlp"] = nlp
    for name in ("", SERVICE):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    print(f"baseline: serving on {addr} with {threads} threads", file=sys.stderr, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
