#!/usr/bin/env python3
"""Tiny byte-level causal language model: slurmtune's demo payload.

It honours slurmtune's payload contract (see README, "Payload contract"):
  train: reads $SLURMTUNE_DATA_DIR/train.jsonl, trains with torch.distributed
         (gloo on CPU, nccl when CUDA is there) using RANK/LOCAL_RANK/WORLD_SIZE/
         MASTER_ADDR/MASTER_PORT, checkpoints every N steps
         ($SLURMTUNE_CHECKPOINT_EVERY, else the checkpoint_every hyperparameter)
         into $SLURMTUNE_CHECKPOINT_DIR/step-NNNNNNNN (a COMPLETE marker written
         last, the directory renamed into place), resumes from the newest
         complete checkpoint ($SLURMTUNE_RESUME_FROM, else the newest it finds),
         and writes $SLURMTUNE_CHECKPOINT_DIR/final at the end. On
         $SLURMTUNE_STOP_SIGNAL (default USR2) or SIGTERM every rank finishes
         its step, the ranks agree (all_reduce), rank 0 writes a complete
         checkpoint and all exit 0 without a final checkpoint.
  eval:  loads the final checkpoint, writes $SLURMTUNE_EVAL_DIR/nll.jsonl
         ({"nll_sum", "tokens"} per validation record) and predictions.jsonl
         ({"prompt", "prediction", "reference"}); `slurmtune gate` reads them.
  metrics: rank 0 appends {"step": N, "time": unix, "loss": ..., "learning_rate": ...,
         "tokens_per_second": ...} to $SLURMTUNE_METRICS_FILE every log_every steps
         (hyperparameter, default 1); eval appends its perplexity and NLL.
Hyperparameters come from $SLURMTUNE_HPARAMS (JSON). stall_once: N (seconds)
stands in for a first attempt that overruns its time limit, for retry tests:
train sleeps N seconds before its first step unless a marker in
$SLURMTUNE_RUN_DIR says an earlier attempt already did.
"""
import json
import math
import os
import shutil
import signal
import sys
import time

# Catch a stop request from the start: torch takes seconds to import, and
# the default action of SIGUSR2 would kill the rank.
STOP = {"requested": False, "signal": None}


def _on_stop_signal(signum, _frame):
    if not STOP["requested"]:
        STOP["requested"], STOP["signal"] = True, signum
        print(f"[tiny_lm rank {os.environ.get('RANK', '0')}] signal {signum}: checkpointing at the next step boundary",
              flush=True)


STOP_SIGNAL = getattr(signal, "SIG" + os.environ.get("SLURMTUNE_STOP_SIGNAL", "USR2").upper().removeprefix("SIG"),
                      signal.SIGUSR2)
if len(sys.argv) > 1 and sys.argv[1] == "train":
    signal.signal(STOP_SIGNAL, _on_stop_signal)
    signal.signal(signal.SIGTERM, _on_stop_signal)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

STOP_EXIT = 0  # exit code after a requested checkpoint-and-stop


def log(msg):
    rank = os.environ.get("RANK", "0")
    print(f"[tiny_lm rank {rank}] {msg}", flush=True)


def write_metrics(step, **values):
    """Append one line of the metrics contract to $SLURMTUNE_METRICS_FILE (if set)."""
    path = os.environ.get("SLURMTUNE_METRICS_FILE")
    if not path:
        return
    line = {"step": step, "time": time.time()}
    line.update(values)
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")


def hparams():
    path = os.environ.get("SLURMTUNE_HPARAMS")
    hp = {}
    if path and os.path.exists(path):
        with open(path) as f:
            hp = json.load(f)
    d = {"max_steps": 60, "batch_size": 16, "seq_len": 64, "lr": 3e-3, "d_model": 64,
         "n_layers": 2, "n_heads": 4, "checkpoint_every": 20, "seed": 1, "eval_records": 16, "max_new_bytes": 40,
         "step_sleep": 0.0, "log_every": 1, "stall_once": 0}
    d.update(hp)
    return d


def record_text(rec):
    if "text" in rec:
        return rec["text"]
    if "messages" in rec:
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in rec["messages"])
    if "instruction" in rec:
        parts = [rec.get("instruction", ""), rec.get("input", ""), rec.get("output", "")]
        return "\n".join(p for p in parts if p)
    raise ValueError("record has no text, messages or instruction field")


def read_texts(path):
    texts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                texts.append(record_text(json.loads(line)))
    return texts


class TinyLM(nn.Module):
    def __init__(self, d_model, n_layers, n_heads, seq_len):
        super().__init__()
        self.seq_len = seq_len
        self.tok = nn.Embedding(256, d_model)
        self.pos = nn.Embedding(seq_len, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout=0.0, batch_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layers)
        self.head = nn.Linear(d_model, 256)
        mask = torch.triu(torch.full((seq_len, seq_len), float("-inf")), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        t = x.shape[1]
        h = self.tok(x) + self.pos(torch.arange(t, device=x.device))
        h = self.blocks(h, mask=self.mask[:t, :t])
        return self.head(h)


def complete_checkpoints(ckdir):
    if not os.path.isdir(ckdir):
        return []
    out = []
    for name in os.listdir(ckdir):
        if name.startswith("step-") and os.path.exists(os.path.join(ckdir, name, "COMPLETE")):
            try:
                out.append((int(name[5:]), os.path.join(ckdir, name)))
            except ValueError:
                pass
    return sorted(out)


def save_checkpoint(ckdir, name, model, opt, step, hp):
    """Write into a temporary directory, mark it COMPLETE last, then rename."""
    final = os.path.join(ckdir, name)
    tmp = os.path.join(ckdir, f".{name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    torch.save(model.state_dict(), os.path.join(tmp, "model.pt"))
    if opt is not None:
        torch.save(opt.state_dict(), os.path.join(tmp, "optim.pt"))
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump({"step": step, "hparams": hp, "time": time.time()}, f)
    for fn in os.listdir(tmp):
        fd = os.open(os.path.join(tmp, fn), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    with open(os.path.join(tmp, "COMPLETE"), "w") as f:
        f.write(f"{step}\n")
    if os.path.exists(final):
        shutil.rmtree(final)
    os.rename(tmp, final)
    return final


def stall_once(seconds, rank):
    """Sleep seconds (or until stopped) on the first attempt only."""
    marker = os.path.join(os.environ.get("SLURMTUNE_RUN_DIR", "."), f"stalled-once.{rank}")
    if seconds <= 0 or os.path.exists(marker):
        return
    open(marker, "w").close()
    log(f"stall_once: first attempt, stalling {seconds:g}s")
    end = time.time() + seconds
    while time.time() < end and not STOP["requested"]:
        time.sleep(1)
    if STOP["requested"]:
        log("stall_once: stopped while stalling")
        sys.exit(0)


def train():
    hp = hparams()
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    if world > 1:
        dist.init_process_group(backend, rank=rank, world_size=world)
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    log(f"world size {world} backend {backend} master {os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}")
    stall_once(float(hp["stall_once"]), rank)

    data_dir = os.environ["SLURMTUNE_DATA_DIR"]
    ckdir = os.environ["SLURMTUNE_CHECKPOINT_DIR"]
    os.makedirs(ckdir, exist_ok=True)
    corpus = "\n".join(read_texts(os.path.join(data_dir, "train.jsonl"))).encode("utf-8")
    data = torch.tensor(list(corpus), dtype=torch.long)
    seq = hp["seq_len"]
    if len(data) <= seq + 1:
        raise SystemExit(f"training data too small: {len(data)} bytes for seq_len {seq}")

    torch.manual_seed(hp["seed"])
    model = TinyLM(hp["d_model"], hp["n_layers"], hp["n_heads"], seq).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"])
    start = 0
    cks = complete_checkpoints(ckdir)
    resume = os.environ.get("SLURMTUNE_RESUME_FROM", "")
    if resume and os.path.exists(os.path.join(resume, "COMPLETE")):
        with open(os.path.join(resume, "meta.json")) as f:
            cks = [(int(json.load(f)["step"]), resume)]
    if cks:
        start, path = cks[-1]
        model.load_state_dict(torch.load(os.path.join(path, "model.pt"), map_location=device))
        opt_path = os.path.join(path, "optim.pt")
        if os.path.exists(opt_path):
            opt.load_state_dict(torch.load(opt_path, map_location=device))
        log(f"resumed from step {start}")
    else:
        log("starting from step 0")
    ddp = nn.parallel.DistributedDataParallel(model) if world > 1 else model

    every = int(os.environ.get("SLURMTUNE_CHECKPOINT_EVERY") or hp.get("checkpoint_every", 20))
    max_steps = int(hp["max_steps"])
    gen = torch.Generator().manual_seed(hp["seed"] * 1000003 + rank)
    t0 = time.time()
    step = start
    loss = torch.tensor(0.0)
    while step < max_steps:
        gen.manual_seed(hp["seed"] * 1000003 + rank * 7919 + step)
        idx = torch.randint(0, len(data) - seq - 1, (hp["batch_size"],), generator=gen)
        x = torch.stack([data[i:i + seq] for i in idx]).to(device)
        y = torch.stack([data[i + 1:i + seq + 1] for i in idx]).to(device)
        logits = ddp(x)
        loss = F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if hp["step_sleep"]:
            time.sleep(float(hp["step_sleep"]))
        # Every rank must agree on stopping: any rank's request stops all.
        flag = torch.tensor([1.0 if STOP["requested"] else 0.0])
        if world > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        stopping = flag.item() > 0
        if step % 10 == 0 or step == max_steps:
            log(f"step {step}/{max_steps} loss {loss.item():.4f}")
        if rank == 0 and (step % max(1, int(hp["log_every"])) == 0 or step == max_steps):
            now = time.time()
            tps = (step - start) * hp["batch_size"] * seq * world / max(now - t0, 1e-9)
            write_metrics(step, loss=loss.item(), learning_rate=opt.param_groups[0]["lr"], tokens_per_second=tps)
        if (step % every == 0 or stopping) and step < max_steps:
            if rank == 0:
                save_checkpoint(ckdir, f"step-{step:08d}", model, opt, step, hp)
                log(f"checkpoint step {step}")
            if world > 1:
                dist.barrier()
        if stopping and step < max_steps:
            log(f"stopped at step {step} on request; checkpoint written")
            if world > 1:
                dist.destroy_process_group()
            sys.exit(STOP_EXIT)
    if rank == 0:
        save_checkpoint(ckdir, "final", model, None, step, hp)
        tokens = max_steps * hp["batch_size"] * seq * world
        log(f"done: {step} steps, final loss {loss.item():.4f}, {tokens / max(time.time() - t0, 1e-9):.0f} tokens/s")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


@torch.no_grad()
def evaluate():
    hp = hparams()
    ckdir = os.environ["SLURMTUNE_CHECKPOINT_DIR"]
    final = os.path.join(ckdir, "final")
    if not os.path.exists(os.path.join(final, "COMPLETE")):
        raise SystemExit(f"no complete final checkpoint in {final}")
    seq = hp["seq_len"]
    model = TinyLM(hp["d_model"], hp["n_layers"], hp["n_heads"], seq)
    model.load_state_dict(torch.load(os.path.join(final, "model.pt"), map_location="cpu"))
    model.eval()
    texts = read_texts(os.path.join(os.environ["SLURMTUNE_DATA_DIR"], "validation.jsonl"))
    if not texts:
        raise SystemExit("validation split is empty")
    out_dir = os.environ["SLURMTUNE_EVAL_DIR"]
    os.makedirs(out_dir, exist_ok=True)
    nll_total, tok_total = 0.0, 0
    with open(os.path.join(out_dir, "nll.jsonl.tmp"), "w") as nf, \
            open(os.path.join(out_dir, "predictions.jsonl.tmp"), "w") as pf:
        for i, text in enumerate(texts):
            b = list(text.encode("utf-8"))
            nll, n = 0.0, 0
            # Score every byte after the first, in windows of seq_len.
            for s in range(0, max(len(b) - 1, 0), seq):
                x = torch.tensor([b[s:s + seq]])
                y = torch.tensor([b[s + 1:s + seq + 1]])
                x = x[:, :y.shape[1]]
                if y.shape[1] == 0:
                    continue
                logits = model(x)
                nll += F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1), reduction="sum").item()
                n += y.shape[1]
            if n:
                nf.write(json.dumps({"nll_sum": nll, "tokens": n}) + "\n")
                nll_total += nll
                tok_total += n
            if i < hp["eval_records"]:
                cut = max(1, len(b) // 2)
                prompt, ref = b[:cut], b[cut:]
                ctx = prompt[-seq:]
                gen = []
                ref = ref[:int(hp["max_new_bytes"])]
                for _ in range(len(ref)):
                    logits = model(torch.tensor([ctx[-seq:]]))
                    nxt = int(logits[0, -1].argmax())
                    gen.append(nxt)
                    ctx.append(nxt)
                pf.write(json.dumps({
                    "prompt": bytes(prompt).decode("utf-8", "replace"),
                    "prediction": bytes(gen).decode("utf-8", "replace"),
                    "reference": bytes(ref).decode("utf-8", "replace"),
                }) + "\n")
    for name in ("nll.jsonl", "predictions.jsonl"):
        os.replace(os.path.join(out_dir, name + ".tmp"), os.path.join(out_dir, name))
    ppl = math.exp(nll_total / tok_total) if tok_total else float("inf")
    log(f"validation: {len(texts)} records, {tok_total} tokens, perplexity {ppl:.3f}")
    if tok_total:
        with open(os.path.join(final, "meta.json")) as f:
            final_step = int(json.load(f).get("step", 0))
        write_metrics(final_step, perplexity=ppl, eval_nll=nll_total / tok_total, eval_tokens=tok_total)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("train", "eval"):
        raise SystemExit("usage: tiny_lm.py train|eval")
    train() if sys.argv[1] == "train" else evaluate()
