#!/usr/bin/env python3
"""Fine-tune a Hugging Face causal language model: slurmtune's HF payload.

    train:  python train_hf.py train
    eval:   python train_hf.py eval [--model DIR]
    (merge: python train_hf.py merge ..., run by train itself for LoRA)

It runs in the pinned environment of scripts/payloads/requirements.txt (built by
scripts/payload-env.sh) and honours slurmtune's payload contract (README,
"Payload contract"). What it reads:

  * the pipeline snapshot ($SLURMTUNE_PIPELINE): model.base (an HF hub id or
    a local directory) or model.config (an HF config.json to build a randomly
    initialised model from); model.tokenizer (a hub id or directory; "train"
    trains a byte-level BPE tokenizer on the prep output, with a chat
    template; unset: the base's); data.format (text, chat or instruction);
    train.lora (r, alpha, dropout, target_modules, merge);
  * prep's $SLURMTUNE_DATA_DIR/train.jsonl and validation.jsonl;
  * hyperparameters ($SLURMTUNE_HPARAMS): learning_rate, max_steps or
    num_train_epochs, per_device_train_batch_size, gradient_accumulation_steps
    (used where the DeepSpeed config says "auto"), max_seq_length, packing,
    warmup_steps, weight_decay, lr_scheduler_type, logging_steps, save_steps,
    save_total_limit, seed, gradient_checkpointing, precision
    (fp32|fp16|bf16; fp32 without CUDA), eval_records, max_new_tokens;
  * DeepSpeed: $SLURMTUNE_DS_CONFIG when set; ranks from RANK, LOCAL_RANK,
    WORLD_SIZE, MASTER_ADDR, MASTER_PORT (srun) or from torchrun/deepspeed.

What it writes:

  * $SLURMTUNE_RUN_DIR/hf-data: the tokenizer and the tokenized (optionally
    packed) splits, built once by rank 0 and reused by every rank and restart;
  * checkpoints: $SLURMTUNE_CHECKPOINT_DIR/hf/checkpoint-N (model, optimizer,
    scheduler, RNG of every rank, data position); once every rank has written
    its part, rank 0 writes COMPLETE into it and points step-NNNNNNNN at it;
    every start resumes from $SLURMTUNE_RESUME_FROM (the newest complete one)
    and logs "resumed from step N" or "starting from step 0";
  * on $SLURMTUNE_STOP_SIGNAL (default USR2) or SIGTERM the ranks agree at
    the next step, save a checkpoint and exit 0 without final/;
  * final: $SLURMTUNE_CHECKPOINT_DIR/final, a plain HF model (config.json,
    model.safetensors, tokenizer; LoRA merged unless train.lora.merge is
    false) with COMPLETE written last; it loads with from_pretrained;
  * metrics: with $SLURMTUNE_METRICS_FILE set, rank 0 appends one JSON line
    per logging step (step, time, loss, learning_rate, grad_norm, epoch,
    tokens_per_second, samples_per_second) and eval one line of its own;
  * eval: nll.jsonl and predictions.jsonl in $SLURMTUNE_EVAL_DIR for
    `slurmtune gate`.
"""
import argparse
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import time

STOP = {"requested": False}
# Progress bars of weight loading and saving are noise in a batch log.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
RANK = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))


def log(msg):
    print(f"[train_hf rank {os.environ.get('RANK', RANK)}] {msg}", flush=True)


def fail(msg):
    """One clear line, then a non-zero exit."""
    print(f"train_hf: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def _on_stop(signum, _frame):
    if not STOP["requested"]:
        STOP["requested"] = True
        log(f"signal {signum}: saving a checkpoint at the next step and stopping")


# Catch a stop request from the start: torch takes seconds to import, and
# the default action of SIGUSR2 would kill the rank.
if len(sys.argv) > 1 and sys.argv[1] == "train":
    _name = os.environ.get("SLURMTUNE_STOP_SIGNAL", "USR2").upper().removeprefix("SIG")
    signal.signal(getattr(signal, "SIG" + _name, signal.SIGUSR2), _on_stop)
    signal.signal(signal.SIGTERM, _on_stop)

HPARAM_DEFAULTS = {
    "learning_rate": 2e-5, "num_train_epochs": 1, "max_steps": -1, "per_device_train_batch_size": 1,
    "gradient_accumulation_steps": 1, "max_seq_length": 1024, "packing": False, "warmup_steps": 0,
    "weight_decay": 0.0, "lr_scheduler_type": "cosine", "logging_steps": 10, "save_steps": 200,
    "save_total_limit": 3, "seed": 1, "gradient_checkpointing": False, "precision": "bf16",
    "eval_records": 16, "max_new_tokens": 32, "max_grad_norm": 1.0,
}
LORA_DEFAULTS = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": None, "merge": True}
INSTRUCTION_PROMPT = "### Instruction:\n{instruction}\n\n{input_block}### Response:\n"
# The chat template of a tokenizer trained here: ChatML with <|im_end|> as
# EOS, and no newline after the last turn, so an assistant turn's tokens end
# with EOS and every rendering of a conversation's prefix is a prefix of it.
# (HF renders templates with trim_blocks: newlines are written as {{ '\n' }}.)
CHATML = ("{% for m in messages %}{% if not loop.first %}{{ '\\n' }}{% endif %}<|im_start|>{{ m['role'] }}{{ '\\n' }}"
          "{{ m['content'] }}<|im_end|>{% endfor %}"
          "{% if add_generation_prompt %}{% if messages %}{{ '\\n' }}{% endif %}<|im_start|>assistant{{ '\\n' }}{% endif %}")


def hparams():
    path = os.environ.get("SLURMTUNE_HPARAMS")
    hp = dict(HPARAM_DEFAULTS)
    if path and os.path.exists(path):
        with open(path) as f:
            hp.update(json.load(f) or {})
    if "warmup_ratio" in hp:
        fail("hyperparameter warmup_ratio: transformers 5 removed it; set warmup_steps")
    if os.environ.get("SLURMTUNE_CHECKPOINT_EVERY"):
        hp["save_steps"] = int(os.environ["SLURMTUNE_CHECKPOINT_EVERY"])
    return hp


def pipeline():
    path = os.environ.get("SLURMTUNE_PIPELINE")
    if not path or not os.path.exists(path):
        return {}
    import yaml  # in the pinned environment (PyYAML)

    with open(path) as f:
        return yaml.safe_load(f) or {}


class Spec:
    """What the pipeline snapshot says about the model, data and LoRA."""

    def __init__(self, pipe, model_arg=None):
        model = pipe.get("model") or {}
        base_dir = os.path.dirname(os.path.abspath(os.environ.get("SLURMTUNE_PIPELINE", ".")))
        self.base = model_arg or model.get("base") or None
        self.config = model.get("config") or None
        self.tokenizer = model.get("tokenizer") or None
        self.format = ((pipe.get("data") or {}).get("format")) or "text"
        lora = (pipe.get("train") or {}).get("lora")
        self.lora = dict(LORA_DEFAULTS, **lora) if lora else None
        if self.base and self.config:
            fail("model.base and model.config are both set: a model comes from one of them")
        if not self.base and not self.config:
            fail("no model: set model.base (a hub id or directory) or model.config (an HF config.json)")
        if self.tokenizer is None and not self.base:
            fail("model.config needs model.tokenizer (a hub id or directory, or \"train\")")
        for attr in ("base", "config", "tokenizer"):
            v = getattr(self, attr)
            if v and (v.startswith("./") or v.startswith("../")):
                setattr(self, attr, os.path.normpath(os.path.join(base_dir, v)))
        if self.base and os.path.isabs(self.base) and not os.path.isdir(self.base):
            fail(f"model.base {self.base}: no such directory")
        if self.config and not os.path.isfile(self.config):
            fail(f"model.config {self.config}: no such file")


def read_records(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except ValueError as e:
                    fail(f"{path}:{n}: not JSON: {e}")
    return out


def record_plain_text(rec):
    """All the text of a record, for training a tokenizer."""
    if "text" in rec:
        return str(rec["text"])
    if "messages" in rec:
        return "\n".join(str(m.get("content", "")) for m in rec["messages"])
    return "\n".join(str(rec.get(k, "")) for k in ("instruction", "input", "output"))


# ------------------------------------------------------------ tokenizer + data


def train_tokenizer(records, vocab_size, out_dir):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator((record_plain_text(r) for r in records), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>",
                                   pad_token="<|pad|>", unk_token=None)
    fast.chat_template = CHATML
    fast.save_pretrained(out_dir)
    return fast


def load_tokenizer(name):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as e:
        fail(f"tokenizer {name}: {str(e).splitlines()[0]}")


def encode(rec, fmt, tok, max_len):
    """input_ids and labels of one record; -100 where no loss is taken."""
    eos = tok.eos_token_id
    if fmt == "text" or "text" in rec and fmt not in ("chat", "instruction"):
        if "text" not in rec:
            raise ValueError("a text record needs a \"text\" field")
        ids = tok(str(rec["text"]), add_special_tokens=False)["input_ids"] + [eos]
        labels = list(ids)
    elif fmt == "instruction":
        if "instruction" not in rec or "output" not in rec:
            raise ValueError("an instruction record needs \"instruction\" and \"output\"")
        inp = str(rec.get("input") or "")
        prompt = INSTRUCTION_PROMPT.format(instruction=rec["instruction"],
                                           input_block=f"### Input:\n{inp}\n\n" if inp else "")
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        r = tok(str(rec["output"]), add_special_tokens=False)["input_ids"] + [eos]
        ids, labels = p + r, [-100] * len(p) + r
    elif fmt == "chat":
        msgs = rec.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise ValueError("a chat record needs a non-empty \"messages\" list")
        ids = list(tok.apply_chat_template(msgs, tokenize=True, return_dict=False))
        labels = [-100] * len(ids)
        for i, m in enumerate(msgs):
            if m.get("role") != "assistant":
                continue
            prefix = list(tok.apply_chat_template(msgs[:i], tokenize=True, add_generation_prompt=True,
                                                  return_dict=False)) if i else []
            upto = list(tok.apply_chat_template(msgs[:i + 1], tokenize=True, return_dict=False))
            if ids[:len(prefix)] != prefix or ids[:len(upto)] != upto:
                raise ValueError("the tokenizer's chat template does not render the start of a conversation as "
                                 "a prefix of the whole: cannot tell the assistant turns' tokens apart")
            labels[len(prefix):len(upto)] = ids[len(prefix):len(upto)]
        if not ids or ids[-1] != eos:
            ids.append(eos)
            labels.append(eos)
    else:
        raise ValueError(f"unknown data format {fmt!r}")
    return ids[:max_len], labels[:max_len]


def pack(examples, block):
    """Concatenates examples and cuts them into blocks of exactly block tokens."""
    ids_all, lab_all, out = [], [], []
    for ids, labels in examples:
        ids_all.extend(ids)
        lab_all.extend(labels)
        while len(ids_all) >= block:
            out.append((ids_all[:block], lab_all[:block]))
            ids_all, lab_all = ids_all[block:], lab_all[block:]
    if ids_all:
        out.append((ids_all, lab_all))
    return out


def data_key(spec, hp, data_dir):
    h = hashlib.sha256()
    for name in ("train.jsonl", "validation.jsonl"):
        p = os.path.join(data_dir, name)
        if os.path.exists(p):
            st = os.stat(p)
            h.update(f"{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    h.update(json.dumps([spec.base, spec.config, spec.tokenizer, spec.format, hp["max_seq_length"],
                         bool(hp["packing"]), hp.get("tokenizer_vocab_size")], sort_keys=True).encode())
    return h.hexdigest()


def prepare_data(spec, hp):
    """Rank 0 builds run_dir/hf-data once (tokenizer + tokenized splits);
    every rank and restart reuses it. Returns (dir, tokenizer)."""
    run_dir = os.environ.get("SLURMTUNE_RUN_DIR") or os.environ["SLURMTUNE_CHECKPOINT_DIR"]
    data_dir = os.environ["SLURMTUNE_DATA_DIR"]
    out = os.path.join(run_dir, "hf-data")
    key = data_key(spec, hp, data_dir)
    done = os.path.join(out, "COMPLETE")

    def ready():
        try:
            with open(done) as f:
                return f.read().strip() == key
        except OSError:
            return False

    if RANK != 0:
        deadline = time.time() + 3600
        while not ready():
            if time.time() > deadline:
                fail(f"rank 0 did not prepare {out} within an hour")
            time.sleep(0.5)
        return out, load_tokenizer(os.path.join(out, "tokenizer"))
    if ready():
        log(f"reusing the tokenized data in {out}")
        return out, load_tokenizer(os.path.join(out, "tokenizer"))
    t0 = time.time()
    tmp = out + f".tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    train_recs = read_records(os.path.join(data_dir, "train.jsonl"))
    if not train_recs:
        fail(f"{data_dir}/train.jsonl has no records")
    tok_dir = os.path.join(tmp, "tokenizer")
    if spec.tokenizer == "train":
        vocab = int(hp.get("tokenizer_vocab_size") or 0)
        if not vocab and spec.config:
            with open(spec.config) as f:
                vocab = int(json.load(f).get("vocab_size") or 0)
        tok = train_tokenizer(train_recs, vocab or 1024, tok_dir)
        log(f"trained a BPE tokenizer on {len(train_recs)} records: {len(tok)} tokens")
    else:
        tok = load_tokenizer(spec.tokenizer or spec.base)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        tok.save_pretrained(tok_dir)
    if tok.eos_token_id is None:
        fail("the tokenizer has no EOS token")
    if spec.format == "chat" and not getattr(tok, "chat_template", None):
        fail(f"data.format is chat but tokenizer {spec.tokenizer or spec.base} has no chat template")
    max_len = int(hp["max_seq_length"])
    stats = {}
    for split in ("train", "validation"):
        path = os.path.join(data_dir, f"{split}.jsonl")
        recs = train_recs if split == "train" else (read_records(path) if os.path.exists(path) else [])
        exs = []
        for i, rec in enumerate(recs):
            try:
                exs.append(encode(rec, spec.format, tok, max_len))
            except (ValueError, TypeError) as e:
                fail(f"{path}: record {i + 1}: {e}")
        if split == "train" and hp["packing"]:
            exs = pack(exs, max_len)
        with open(os.path.join(tmp, f"{split}.jsonl"), "w") as f:
            for ids, labels in exs:
                f.write(json.dumps({"input_ids": ids, "labels": labels}) + "\n")
        n_tok = sum(len(i) for i, _ in exs)
        stats[split] = {"examples": len(exs), "tokens": n_tok,
                        "loss_tokens": sum(sum(1 for x in lab if x != -100) for _, lab in exs)}
    with open(os.path.join(tmp, "stats.json"), "w") as f:
        json.dump(stats, f)
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    with open(done + ".tmp", "w") as f:
        f.write(key + "\n")
    os.replace(done + ".tmp", done)
    log(f"tokenized once into {out} in {time.time() - t0:.1f} s: train {stats['train']}, "
        f"validation {stats['validation']}, packing {bool(hp['packing'])}")
    return out, load_tokenizer(os.path.join(out, "tokenizer"))


def load_split(dir_, split):
    return read_records(os.path.join(dir_, f"{split}.jsonl"))


class Collator:
    """Pads input_ids with pad and labels with -100 (labels come from the data)."""

    def __init__(self, pad_id):
        self.pad_id = pad_id

    def __call__(self, batch):
        import torch

        n = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), n), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for i, b in enumerate(batch):
            k = len(b["input_ids"])
            ids[i, :k] = torch.tensor(b["input_ids"])
            labels[i, :k] = torch.tensor(b["labels"])
            mask[i, :k] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


# ------------------------------------------------------------ distributed helpers


def dist_on():
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def dist_barrier():
    import torch.distributed as dist

    if dist_on():
        dist.barrier()


def any_rank(flag):
    """True on every rank when flag is true on any rank."""
    import torch
    import torch.distributed as dist

    if not dist_on():
        return flag
    device = "cuda" if torch.cuda.is_available() and dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.item() > 0


def mark_complete(ckdir, checkpoint, step):
    """Rank 0, after every rank saved: COMPLETE last, then step-N -> it."""
    with open(os.path.join(checkpoint, "COMPLETE"), "w") as f:
        f.write(f"{step}\n")
    link = os.path.join(ckdir, f"step-{step:08d}")
    tmp = link + f".tmp-{os.getpid()}"
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(os.path.relpath(checkpoint, ckdir), tmp)
    os.replace(tmp, link)


def metrics_line(rec):
    path = os.environ.get("SLURMTUNE_METRICS_FILE")
    if not path:
        return
    rec = {k: v for k, v in rec.items() if v is not None}
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()


def precision_of(cfg, hp, cuda):
    fp16 = (cfg.get("fp16") or {}).get("enabled", "auto")
    bf16 = (cfg.get("bf16") or cfg.get("bfloat16") or {}).get("enabled", "auto")
    if fp16 is True:
        prec = "fp16"
    elif bf16 is True:
        prec = "bf16"
    elif fp16 is False and bf16 is False:
        prec = "fp32"
    else:
        prec = str(hp["precision"]) if cuda else "fp32"
    if prec not in ("fp32", "fp16", "bf16"):
        fail(f"precision must be fp32, fp16 or bf16, not {prec!r}")
    if prec != "fp32" and not cuda:
        fail(f"precision {prec} needs CUDA GPUs; this node has none (set train.deepspeed.precision: fp32)")
    return prec


# ------------------------------------------------------------ train


def build_model(spec, tok, dtype):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if spec.config:
        try:
            with open(spec.config) as f:
                raw = json.load(f)
            config = AutoConfig.for_model(**raw) if "model_type" in raw else None
        except (ValueError, KeyError, TypeError) as e:
            fail(f"model.config {spec.config}: {str(e).splitlines()[0]}")
        if config is None:
            fail(f"model.config {spec.config}: no model_type (e.g. \"llama\")")
        config.vocab_size = len(tok)
        config.pad_token_id, config.eos_token_id = tok.pad_token_id, tok.eos_token_id
        config.bos_token_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        try:
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        except (ValueError, TypeError, KeyError) as e:
            fail(f"model.config {spec.config}: cannot build a causal LM: {str(e).splitlines()[0]}")
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(spec.base, dtype=dtype)
        except (OSError, ValueError) as e:
            fail(f"model.base {spec.base}: {str(e).splitlines()[0]}")
        if len(tok) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tok))
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tok.pad_token_id
        model.generation_config.eos_token_id = tok.eos_token_id
    del torch
    return model


def train(args):
    import torch
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments, set_seed

    hp = hparams()
    spec = Spec(pipeline())
    ckdir = os.environ["SLURMTUNE_CHECKPOINT_DIR"]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    ds_path = os.environ.get("SLURMTUNE_DS_CONFIG") or None
    cfg = {}
    if ds_path:
        with open(ds_path) as f:
            cfg = json.load(f)
    stage = int((cfg.get("zero_optimization") or {}).get("stage", 0)) if ds_path else None
    cuda = torch.cuda.is_available()
    prec = precision_of(cfg, hp, cuda)
    if not cuda:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    def number(key, default):
        v = cfg.get(key, "auto")
        return default if v == "auto" else v

    data_dir, tok = prepare_data(spec, hp)
    train_set = load_split(data_dir, "train")
    with open(os.path.join(data_dir, "stats.json")) as f:
        stats = json.load(f)
    tokens_per_example = stats["train"]["tokens"] / max(1, stats["train"]["examples"])

    out_dir = os.path.join(ckdir, "hf")
    # TrainingArguments first: with a ZeRO-3 config it makes model loading
    # partitioned (zero.Init) across the ranks.
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing.
    ckpt_key = "activation_checkpointing" if "activation_checkpointing" in TrainingArguments.__dataclass_fields__ \
        else "gradient_checkpointing"
    targs = TrainingArguments(
        output_dir=out_dir, **{ckpt_key: bool(hp["gradient_checkpointing"])},
        per_device_train_batch_size=int(number("train_micro_batch_size_per_gpu", hp["per_device_train_batch_size"])),
        gradient_accumulation_steps=int(number("gradient_accumulation_steps", hp["gradient_accumulation_steps"])),
        max_grad_norm=float(number("gradient_clipping", hp["max_grad_norm"])),
        learning_rate=float(hp["learning_rate"]), num_train_epochs=float(hp["num_train_epochs"]),
        max_steps=int(hp["max_steps"]), warmup_steps=int(hp["warmup_steps"]), weight_decay=float(hp["weight_decay"]),
        lr_scheduler_type=hp["lr_scheduler_type"], logging_steps=int(hp["logging_steps"]),
        save_strategy="steps", save_steps=int(hp["save_steps"]), save_total_limit=int(hp["save_total_limit"]),
        seed=int(hp["seed"]), data_seed=int(hp["seed"]), fp16=prec == "fp16", bf16=prec == "bf16",
        deepspeed=ds_path, report_to=[], disable_tqdm=True, remove_unused_columns=False,
        ddp_backend="gloo" if world > 1 and not cuda else None, dataloader_pin_memory=cuda, dataloader_num_workers=0, save_only_model=False,
        log_level="warning", log_level_replica="error",
    )
    rank = targs.process_index
    log(f"world size {targs.world_size} (WORLD_SIZE {world}) deepspeed "
        f"{'ZeRO stage %d' % stage if ds_path else 'off'}{' with optimizer offload' if ds_path and (cfg.get('zero_optimization') or {}).get('offload_optimizer', {}).get('device') in ('cpu', 'nvme') else ''} "
        f"precision {prec} model {spec.base or spec.config} format {spec.format}")
    set_seed(int(hp["seed"]))
    # Weights stay fp32 (master copy) unless ZeRO-3 partitions them in the
    # training precision at load; mixed precision casts on the fly.
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(prec) if stage == 3 else None
    model = build_model(spec, tok, dtype or torch.float32)
    if hp["gradient_checkpointing"]:
        model.config.use_cache = False
    if spec.lora:
        from peft import LoraConfig, get_peft_model

        lc = spec.lora
        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=int(lc["r"]), lora_alpha=int(lc["alpha"]),
                                                 lora_dropout=float(lc["dropout"]),
                                                 target_modules=lc["target_modules"] or None))
        if hp["gradient_checkpointing"]:
            model.enable_input_require_grads()
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        log(f"LoRA r={lc['r']} alpha={lc['alpha']}: {trainable} trainable parameters")
    n_params = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters())
    log(f"model: {model.config.model_type}, {n_params} parameters")

    class Contract(TrainerCallback):
        """Complete-marks checkpoints, stops all ranks together on a signal,
        logs and writes metrics."""

        def __init__(self):
            self.last = (time.time(), 0)

        def on_train_begin(self, _args, state, control, model=None, **_kw):
            if state.is_world_process_zero and hp["gradient_checkpointing"]:
                m = getattr(model, "base_model", model)
                on = getattr(m, "is_activation_checkpointing", getattr(m, "is_gradient_checkpointing", None))
                log(f"gradient checkpointing: {'on' if on else 'NOT on' if on is False else 'requested'}")

        def on_step_end(self, _args, state, control, **_kw):
            if any_rank(STOP["requested"]):
                STOP["requested"] = True
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_save(self, _args, state, control, **_kw):
            dist_barrier()  # every rank has written its part of the checkpoint
            if state.is_world_process_zero:
                path = os.path.join(out_dir, f"checkpoint-{state.global_step}")
                if os.path.isdir(path):
                    mark_complete(ckdir, path, state.global_step)
                    log(f"checkpoint step {state.global_step}")
            dist_barrier()
            return control

        def on_log(self, _args, state, control, logs=None, **_kw):
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            now = time.time()
            t0, s0 = self.last
            self.last = (now, state.global_step)
            samples = (state.global_step - s0) * targs.per_device_train_batch_size * \
                targs.gradient_accumulation_steps * targs.world_size
            sps = samples / (now - t0) if now > t0 and s0 != state.global_step else None
            rec = {"step": state.global_step, "time": now, "loss": logs.get("loss"),
                   "learning_rate": logs.get("learning_rate"), "grad_norm": logs.get("grad_norm"),
                   "epoch": logs.get("epoch"), "samples_per_second": sps,
                   "tokens_per_second": sps * tokens_per_example if sps is not None else None}
            metrics_line(rec)
            log(f"step {state.global_step} loss {rec['loss']:.4f} lr {rec['learning_rate']:.3g} "
                f"grad_norm {rec['grad_norm'] if rec['grad_norm'] is None else '%.3f' % rec['grad_norm']}")

    contract = Contract()
    trainer = Trainer(model=model, args=targs, train_dataset=train_set, data_collator=Collator(tok.pad_token_id),
                      callbacks=[contract], processing_class=tok)
    trainer.remove_callback(PrinterCallback)  # Contract logs each step in one line

    resume = os.environ.get("SLURMTUNE_RESUME_FROM") or None
    if resume and not os.path.exists(os.path.join(resume, "COMPLETE")):
        resume = None
    if resume:
        resume = os.path.realpath(resume)
        with open(os.path.join(resume, "COMPLETE")) as f:
            log(f"resumed from step {int(f.read().strip() or 0)}")
        contract.last = (time.time(), int(open(os.path.join(resume, "COMPLETE")).read().strip() or 0))
    else:
        log("starting from step 0")
    trainer.train(resume_from_checkpoint=resume)

    if STOP["requested"]:
        log(f"stopped at step {trainer.state.global_step} on request; checkpoint written")
        return
    save_final(trainer, spec, tok, ckdir, rank)


def save_final(trainer, spec, tok, ckdir, rank):
    """Every rank takes part (ZeRO-3 gathers the weights); rank 0 writes a
    plain HF model, merging LoRA, and moves it into place, COMPLETE last."""
    step = trainer.state.global_step
    tmp = os.path.join(ckdir, ".final.tmp")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    dist_barrier()
    if spec.lora and spec.lora.get("merge", True):
        # The whole PEFT state (base and adapter weights), gathered on rank 0,
        # is merged in a fresh process: outside this one's ZeRO-3 context.
        sd = trainer.accelerator.get_state_dict(trainer.model_wrapped if trainer.is_deepspeed_enabled else trainer.model)
        if rank == 0:
            from safetensors.torch import save_file

            unwrapped = trainer.accelerator.unwrap_model(trainer.model)
            peft_dir = os.path.join(ckdir, ".peft.tmp")
            shutil.rmtree(peft_dir, ignore_errors=True)
            os.makedirs(peft_dir)
            unwrapped.base_model.model.config.save_pretrained(peft_dir)
            unwrapped.peft_config["default"].save_pretrained(peft_dir)
            save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(peft_dir, "peft_state.safetensors"))
            import subprocess

            rc = subprocess.call([sys.executable, os.path.abspath(__file__), "merge", peft_dir, tmp],
                                 env=dict(os.environ, RANK="0", WORLD_SIZE="1"))
            if rc != 0:
                fail(f"merging the LoRA adapter failed (exit {rc})")
            shutil.rmtree(peft_dir, ignore_errors=True)
    else:
        trainer.save_model(tmp)
    dist_barrier()
    if rank == 0:
        for junk in ("training_args.bin",):
            if os.path.exists(os.path.join(tmp, junk)):
                os.remove(os.path.join(tmp, junk))
        if not any(f.endswith(".safetensors") for f in os.listdir(tmp)):
            fail(f"the final model in {tmp} has no safetensors weights (ZeRO-3 needs "
                 "stage3_gather_16bit_weights_on_model_save: true)")
        tok.save_pretrained(tmp)
        with open(os.path.join(tmp, "slurmtune.json"), "w") as f:
            json.dump({"base_model": spec.base, "model_config": spec.config, "lora": spec.lora, "step": step}, f)
        with open(os.path.join(tmp, "COMPLETE"), "w") as f:
            f.write(f"{step}\n")
        final = os.path.join(ckdir, "final")
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        log(f"done: {step} steps; final model in {final}")
    dist_barrier()


def merge(args):
    """Builds the PEFT model on CPU, loads the gathered state, merges the
    adapter into the base weights and saves a plain HF model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(args.src)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig.from_pretrained(args.src))
    sd = load_file(os.path.join(args.src, "peft_state.safetensors"))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if "lora_" in k or not k.endswith("rotary_emb.inv_freq")]
    if missing or unexpected:
        fail(f"merge: state does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    merged = model.merge_and_unload()
    merged.save_pretrained(args.dst, safe_serialization=True)
    log(f"merged the LoRA adapter into {args.dst}")


# ------------------------------------------------------------ eval


def evaluate(args):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hp = hparams()
    final = args.model or os.path.join(os.environ["SLURMTUNE_CHECKPOINT_DIR"], "final")
    if not args.model and not os.path.exists(os.path.join(final, "COMPLETE")):
        fail(f"no complete final checkpoint in {final}")
    tok = AutoTokenizer.from_pretrained(final)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32).to(device).eval()
    spec_format = ((pipeline().get("data") or {}).get("format")) or "text"
    path = os.path.join(os.environ["SLURMTUNE_DATA_DIR"], "validation.jsonl")
    records = read_records(path)
    if not records:
        fail(f"{path}: the validation split is empty")
    out_dir = os.environ["SLURMTUNE_EVAL_DIR"]
    os.makedirs(out_dir, exist_ok=True)
    max_len = int(hp["max_seq_length"])
    nll_total, tok_total, n_pred = 0.0, 0, 0
    t0 = time.time()
    with torch.no_grad(), open(os.path.join(out_dir, "nll.jsonl.tmp"), "w") as nf, \
            open(os.path.join(out_dir, "predictions.jsonl.tmp"), "w") as pf:
        for i, rec in enumerate(records):
            try:
                ids, labels = encode(rec, spec_format, tok, max_len)
            except (ValueError, TypeError) as e:
                fail(f"{path}: record {i + 1}: {e}")
            nll, n = sequence_nll(model, ids, labels, device)
            if n:
                nf.write(json.dumps({"nll_sum": nll, "tokens": n}) + "\n")
                nll_total += nll
                tok_total += n
            if n_pred < int(hp["eval_records"]):
                prompt_ids, ref_ids = split_prompt(ids, labels)
                if prompt_ids and ref_ids:
                    x = torch.tensor([prompt_ids], device=device)
                    gen = model.generate(x, attention_mask=torch.ones_like(x),
                                         max_new_tokens=min(int(hp["max_new_tokens"]), len(ref_ids)),
                                         do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
                    pf.write(json.dumps({
                        "prompt": tok.decode(prompt_ids, skip_special_tokens=True),
                        "prediction": tok.decode(gen[0, len(prompt_ids):], skip_special_tokens=True).strip(),
                        "reference": tok.decode(ref_ids, skip_special_tokens=True).strip(),
                    }) + "\n")
                    n_pred += 1
    for name in ("nll.jsonl", "predictions.jsonl"):
        os.replace(os.path.join(out_dir, name + ".tmp"), os.path.join(out_dir, name))
    ppl = math.exp(nll_total / tok_total) if tok_total else float("inf")
    metrics_line({"step": step_of(final), "time": time.time(), "eval_perplexity": ppl,
                  "eval_nll_per_token": nll_total / tok_total if tok_total else None,
                  "eval_tokens": tok_total, "eval_records": len(records), "eval_predictions": n_pred,
                  "eval_seconds": time.time() - t0})
    log(f"validation: {len(records)} records, {tok_total} tokens, perplexity {ppl:.4f}")


def step_of(final):
    try:
        with open(os.path.join(final, "COMPLETE")) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None


def sequence_nll(model, ids, labels, device):
    """Summed NLL of the label tokens (those the training loss counts) and
    their number: exp(sum / tokens) over the split is its perplexity."""
    import torch
    import torch.nn.functional as F

    if len(ids) < 2:
        return 0.0, 0
    x = torch.tensor([ids], device=device)
    y = torch.tensor([labels[1:]], device=device)
    logits = model(input_ids=x).logits[:, :-1].float()
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100, reduction="sum")
    return nll.item(), int((y != -100).sum().item())


def split_prompt(ids, labels):
    """The prompt (up to the first label token, or the first half of a text
    record) and the reference continuation without the final EOS."""
    first = next((i for i, v in enumerate(labels) if v != -100), len(labels))
    cut = first if first > 0 else len(ids) // 2
    ref = ids[cut:]
    if ref and labels and labels[-1] == ids[-1]:
        ref = ref[:-1]
    return ids[:cut], ref


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    sub.add_parser("train")
    e = sub.add_parser("eval")
    e.add_argument("--model", help="a model directory (default: the run's final checkpoint)")
    m = sub.add_parser("merge")
    m.add_argument("src")
    m.add_argument("dst")
    args = ap.parse_args()
    {"train": train, "eval": evaluate, "merge": merge}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
