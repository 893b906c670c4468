#!/usr/bin/env python3
"""A small OpenAI-compatible server for Hugging Face checkpoints.

slurmtune's serve command for CPU clusters and tests (deploy.serve.command);
`vllm serve` stays the default on GPUs. It loads a final checkpoint (any
directory from_pretrained loads: config.json, safetensors, tokenizer) and
serves

  GET  /health                 200 once the model is loaded
  GET  /v1/models              the one model
  POST /v1/completions         {"prompt", "max_tokens"=16, "temperature"=0, "stream"=false}
  POST /v1/chat/completions    {"messages", "max_tokens"=16, "temperature"=0, "stream"=false}
                               (the tokenizer's chat template; streaming as
                               chat.completion.chunk SSE events, then [DONE])

on HTTP/1.1 with keep-alive, one thread per connection, generating one
request at a time. Prompts are logged to --prompt-log as tiny_serve.py does
(chat: the user turns). It runs in the payload environment
(scripts/payloads/requirements.txt) and reuses tiny_serve.py's HTTP plumbing.

usage: hf_serve.py --model DIR [--port N] [--host 0.0.0.0] [--name NAME]
"""
import argparse
import json
import os
import sys
import threading
import time

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the scripts directory
import tiny_serve  # noqa: E402


def log(msg):
    print(f"[hf_serve] {msg}", flush=True)


class Model:
    def __init__(self, path, name):
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self.name = name
        self.step = None
        try:
            with open(os.path.join(path, "COMPLETE")) as f:
                self.step = int(f.read().strip() or 0)
        except (OSError, ValueError):
            pass
        self.lock = threading.Lock()

    def chat_prompt(self, messages):
        if not getattr(self.tok, "chat_template", None):
            raise ValueError("this model's tokenizer has no chat template: use /v1/completions")
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, prompt, max_tokens, temperature):
        """Yields pieces of generated text; the lock serialises requests."""
        ids = self.tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        if ids.shape[1] == 0:
            ids = torch.tensor([[self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id]])
        limit = getattr(self.model.config, "max_position_embeddings", 2048)
        ids = ids[:, -max(1, limit - max_tokens):]
        streamer = TextIteratorStreamer(self.tok, skip_prompt=True, skip_special_tokens=True)
        kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens, streamer=streamer,
                  pad_token_id=self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id,
                  eos_token_id=self.tok.eos_token_id)
        kw.update(do_sample=True, temperature=temperature) if temperature > 0 else kw.update(do_sample=False)
        with self.lock:
            err = []

            def run():
                try:
                    with torch.no_grad():
                        self.model.generate(**kw)
                except Exception as e:  # noqa: BLE001 - reported to the client
                    err.append(e)
                    streamer.end()

            th = threading.Thread(target=run, daemon=True)
            th.start()
            for piece in streamer:
                if piece:
                    yield piece
            th.join()
            if err:
                raise RuntimeError(str(err[0]))


class Handler(tiny_serve.Handler):
    server_version = "hf_serve/1"

    def do_POST(self):
        srv = self.server
        raw = self.read_body()
        if raw is None:
            return
        chat = self.path == "/v1/chat/completions"
        if self.path != "/v1/completions" and not chat:
            return self.error(404, "not found")
        try:
            req = json.loads(raw or b"{}")
            if chat:
                msgs = req.get("messages")
                if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) for m in msgs):
                    raise ValueError("messages must be a non-empty list of {role, content}")
                prompt = srv.model.chat_prompt(msgs)
                logged = "\n".join(str(m.get("content", "")) for m in msgs if m.get("role") == "user")
            else:
                prompt = req.get("prompt", "")
                if isinstance(prompt, list):
                    prompt = prompt[0] if prompt else ""
                if not isinstance(prompt, str):
                    raise ValueError("prompt must be a string")
                logged = prompt
            max_tokens, temperature, stream = tiny_serve.sampling(req)
        except (ValueError, TypeError, AttributeError) as e:
            return self.error(400, f"bad request: {e}")
        srv.prompts.write(logged)
        if srv.failures.fail():
            return self.error(500, "injected failure (--fail-rate)")
        cid = f"{'chatcmpl' if chat else 'cmpl'}-{os.getpid()}-{time.monotonic_ns()}"
        created = int(time.time())
        name = srv.model.name
        if not stream:
            try:
                text = "".join(srv.model.generate(prompt, max_tokens, temperature))
            except RuntimeError as e:
                return self.error(500, f"generation failed: {e}")
            n_prompt = len(srv.model.tok(prompt, add_special_tokens=False)["input_ids"])
            n_out = len(srv.model.tok(text, add_special_tokens=False)["input_ids"])
            finish = "length" if n_out >= max_tokens else "stop"
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish} if chat \
                else {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
            return self.send_json(200, {
                "id": cid, "object": "chat.completion" if chat else "text_completion", "created": created,
                "model": name, "choices": [choice],
                "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out},
            })
        self.start_events()

        def event(text, finish, first=False):
            if chat:
                delta = {"role": "assistant", "content": text} if first else ({"content": text} if text else {})
                return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return {"id": cid, "object": "text_completion", "created": created, "model": name,
                    "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]}

        first, text = True, ""
        try:
            for piece in srv.model.generate(prompt, max_tokens, temperature):
                self.event(event(piece, None, first))
                first, text = False, text + piece
            n_out = len(srv.model.tok(text, add_special_tokens=False)["input_ids"]) if text else 0
            self.event(event("", "length" if n_out >= max_tokens else "stop", first))
        except RuntimeError as e:
            self.event({"error": {"message": f"generation failed: {e}", "type": "server_error", "code": 500}})
        self.end_events()


def main():
    ap = argparse.ArgumentParser(description="OpenAI-compatible server for a Hugging Face checkpoint")
    ap.add_argument("--model", required=True, help="model directory (from_pretrained)")
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=int(os.environ.get("SLURMTUNE_SERVE_PORT", "0") or 0))
    ap.add_argument("--name", default=os.environ.get("SLURMTUNE_SERVE_NAME") or "model")
    ap.add_argument("--prompt-log", default=os.environ.get("SLURMTUNE_PROMPT_LOG", ""))
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--address-file", default="", help="write host:port here once listening (port 0 picks one)")
    args = ap.parse_args()

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    try:
        model = Model(args.model, args.name)
    except (OSError, ValueError) as e:
        print(f"hf_serve: error: cannot load {args.model}: {str(e).splitlines()[0]}", file=sys.stderr, flush=True)
        sys.exit(2)
    srv = tiny_serve.Server((args.host, args.port), Handler)
    srv.model = model
    srv.prompts, srv.failures = tiny_serve.PromptLog(args.prompt_log), tiny_serve.FailureInjector(args.fail_rate)
    host, port = srv.server_address[:2]
    log(f"serving {args.model} (step {model.step}) as {args.name} on {host}:{port}")
    tiny_serve.serve(srv, args.address_file, log)


if __name__ == "__main__":
    main()
