#!/usr/bin/env python3
"""Fine-tune a Hugging Face causal language model: slurmtune's HF payload.

    train:  python train_hf.py train [--model ID_OR_PATH]
    eval:   python train_hf.py eval  [--model ID_OR_PATH]

It needs torch, transformers and, as the pipeline asks, deepspeed and peft
(none of them are in Debian: install them in a venv or use a container,
environment.container). It honours slurmtune's payload contract (README,
"Payload contract"):

  * data: prep's $SLURMTUNE_DATA_DIR/train.jsonl and validation.jsonl, records
    with "text", "messages" (chat) or "instruction"/"input"/"output";
  * model: --model, else model.base of the run's pipeline snapshot
    ($SLURMTUNE_PIPELINE), any HF hub id or local path;
  * hyperparameters ($SLURMTUNE_HPARAMS): learning_rate, max_steps or
    num_train_epochs, per_device_train_batch_size and
    gradient_accumulation_steps (used where the DeepSpeed config says "auto";
    a number there wins), max_seq_length, warmup_ratio, weight_decay,
    lr_scheduler_type, logging_steps, save_steps, save_total_limit, seed,
    gradient_checkpointing, precision (fp32|fp16|bf16, where the config says
    "auto"), lora ({r, alpha, dropout, target_modules}: train a LoRA adapter
    with peft), eval_records, max_new_tokens;
  * DeepSpeed: $SLURMTUNE_DS_CONFIG when set (TrainingArguments.deepspeed);
  * ranks: RANK/LOCAL_RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT from the launcher;
  * checkpoints: the Trainer writes $SLURMTUNE_CHECKPOINT_DIR/hf/checkpoint-N;
    once every rank has written its part, rank 0 writes COMPLETE into it and
    points $SLURMTUNE_CHECKPOINT_DIR/step-NNNNNNNN at it, so a half-written
    checkpoint is never resumed from; every start resumes from
    $SLURMTUNE_RESUME_FROM (the newest complete one) and logs
    "resumed from step N" or "starting from step 0";
  * stop: on $SLURMTUNE_STOP_SIGNAL (default USR2) or SIGTERM the ranks agree
    at the next step (all_reduce), save a checkpoint and exit 0 without
    final/; slurmtune's batch script then requeues the job;
  * final: the model (or adapter) and tokenizer in $SLURMTUNE_CHECKPOINT_DIR/final
    with COMPLETE written last;
  * eval: nll.jsonl and predictions.jsonl in $SLURMTUNE_EVAL_DIR for
    `slurmtune gate`.
"""
import argparse
import json
import math
import os
import shutil
import signal
import sys

STOP = {"requested": False}


def _on_stop(signum, _frame):
    if not STOP["requested"]:
        STOP["requested"] = True
        log(f"signal {signum}: saving a checkpoint at the next step and stopping")


def log(msg):
    print(f"[train_hf rank {os.environ.get('RANK', '0')}] {msg}", flush=True)


def install_stop_handlers():
    name = os.environ.get("SLURMTUNE_STOP_SIGNAL", "USR2").upper().removeprefix("SIG")
    signal.signal(getattr(signal, "SIG" + name, signal.SIGUSR2), _on_stop)
    signal.signal(signal.SIGTERM, _on_stop)


def hparams():
    path = os.environ.get("SLURMTUNE_HPARAMS")
    hp = {}
    if path and os.path.exists(path):
        with open(path) as f:
            hp = json.load(f)
    d = {"learning_rate": 2e-5, "num_train_epochs": 1, "max_steps": -1, "per_device_train_batch_size": 1,
         "gradient_accumulation_steps": 1, "max_seq_length": 1024, "warmup_ratio": 0.03, "weight_decay": 0.0,
         "lr_scheduler_type": "cosine", "logging_steps": 10, "save_steps": 200, "save_total_limit": 3, "seed": 1,
         "gradient_checkpointing": False, "precision": "bf16", "lora": None, "eval_records": 16, "max_new_tokens": 64}
    d.update(hp)
    if os.environ.get("SLURMTUNE_CHECKPOINT_EVERY"):
        d["save_steps"] = int(os.environ["SLURMTUNE_CHECKPOINT_EVERY"])
    return d


def base_model(arg):
    if arg:
        return arg
    path = os.environ.get("SLURMTUNE_PIPELINE")
    if path and os.path.exists(path):
        import yaml  # a dependency of transformers

        with open(path) as f:
            base = ((yaml.safe_load(f) or {}).get("model") or {}).get("base")
        if base:
            return base
    raise SystemExit("no model: set model.base in the pipeline file or pass --model")


def read_records(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


def record_text(rec, tokenizer):
    if "text" in rec:
        return rec["text"]
    if "messages" in rec:
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(rec["messages"], tokenize=False)
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in rec["messages"])
    if "instruction" in rec:
        parts = [rec.get("instruction", ""), rec.get("input", ""), rec.get("output", "")]
        return "\n".join(p for p in parts if p)
    raise ValueError("record has no text, messages or instruction field")


def ds_config():
    path = os.environ.get("SLURMTUNE_DS_CONFIG")
    if not path:
        return None, {}
    with open(path) as f:
        return path, json.load(f)


def number(cfg, key, default):
    """A DeepSpeed config number, or default where the config says "auto"."""
    v = cfg.get(key, "auto")
    return default if v == "auto" else v


def precision(cfg, hp):
    fp16 = (cfg.get("fp16") or {}).get("enabled", "auto")
    bf16 = (cfg.get("bf16") or cfg.get("bfloat16") or {}).get("enabled", "auto")
    if fp16 is True:
        return "fp16"
    if bf16 is True:
        return "bf16"
    if fp16 is False and bf16 is False:
        return "fp32"
    return hp["precision"]


def dist_barrier():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def any_rank(flag):
    """True on every rank when flag is true on any rank."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
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


def train(args):
    install_stop_handlers()
    import torch
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling, Trainer,
                              TrainerCallback, TrainingArguments)

    hp = hparams()
    ckdir = os.environ["SLURMTUNE_CHECKPOINT_DIR"]
    data_dir = os.environ["SLURMTUNE_DATA_DIR"]
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    model_id = base_model(args.model)
    ds_path, cfg = ds_config()
    prec = precision(cfg, hp)
    log(f"world size {world} model {model_id} deepspeed {ds_path or 'off'} precision {prec}")

    tokenizer = AutoTokenizer.from_pretrained(model_id)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(prec, torch.float32)
    model = AutoModelForCausalLM.from_pretrained(model_id, torch_dtype=dtype)
    if hp["gradient_checkpointing"]:
        model.gradient_checkpointing_enable()
    lora = hp.get("lora")
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=int(lora.get("r", 8)),
                                                 lora_alpha=int(lora.get("alpha", 16)),
                                                 lora_dropout=float(lora.get("dropout", 0.05)),
                                                 target_modules=lora.get("target_modules")))
        if rank == 0:
            model.print_trainable_parameters()

    texts = [record_text(r, tokenizer) for r in read_records(os.path.join(data_dir, "train.jsonl"))]
    enc = tokenizer(texts, truncation=True, max_length=int(hp["max_seq_length"]))
    dataset = [{"input_ids": ids, "attention_mask": m} for ids, m in zip(enc["input_ids"], enc["attention_mask"])]

    out_dir = os.path.join(ckdir, "hf")

    class Contract(TrainerCallback):
        """Complete-marks checkpoints and stops all ranks together on a signal."""

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

    targs = TrainingArguments(
        output_dir=out_dir,
        per_device_train_batch_size=int(number(cfg, "train_micro_batch_size_per_gpu", hp["per_device_train_batch_size"])),
        gradient_accumulation_steps=int(number(cfg, "gradient_accumulation_steps", hp["gradient_accumulation_steps"])),
        max_grad_norm=float(number(cfg, "gradient_clipping", hp.get("max_grad_norm", 1.0))),
        learning_rate=float(hp["learning_rate"]), num_train_epochs=float(hp["num_train_epochs"]),
        max_steps=int(hp["max_steps"]), warmup_ratio=float(hp["warmup_ratio"]), weight_decay=float(hp["weight_decay"]),
        lr_scheduler_type=hp["lr_scheduler_type"], logging_steps=int(hp["logging_steps"]),
        save_strategy="steps", save_steps=int(hp["save_steps"]), save_total_limit=int(hp["save_total_limit"]),
        seed=int(hp["seed"]), fp16=prec == "fp16", bf16=prec == "bf16", deepspeed=ds_path,
        report_to=[], ddp_find_unused_parameters=False if world > 1 else None,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=dataset,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False), callbacks=[Contract()])

    resume = os.environ.get("SLURMTUNE_RESUME_FROM") or None
    if resume and not os.path.exists(os.path.join(resume, "COMPLETE")):
        resume = None
    if resume:
        resume = os.path.realpath(resume)
        with open(os.path.join(resume, "COMPLETE")) as f:
            log(f"resumed from step {int(f.read().strip() or 0)}")
    else:
        log("starting from step 0")
    trainer.train(resume_from_checkpoint=resume)

    if STOP["requested"]:
        log(f"stopped at step {trainer.state.global_step} on request; checkpoint written")
        return
    # The final model: every rank takes part in saving (ZeRO-3 gathers the
    # weights when stage3_gather_16bit_weights_on_model_save is on), rank 0
    # marks it complete and moves it into place.
    tmp = os.path.join(ckdir, ".final.tmp")
    if trainer.is_world_process_zero():
        shutil.rmtree(tmp, ignore_errors=True)
    dist_barrier()
    trainer.save_model(tmp)
    dist_barrier()
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(tmp)
        with open(os.path.join(tmp, "slurmtune.json"), "w") as f:
            json.dump({"base_model": model_id, "lora": bool(lora), "step": trainer.state.global_step}, f)
        with open(os.path.join(tmp, "COMPLETE"), "w") as f:
            f.write(f"{trainer.state.global_step}\n")
        final = os.path.join(ckdir, "final")
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        log(f"done: {trainer.state.global_step} steps")
    dist_barrier()


def evaluate(args):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hp = hparams()
    final = os.path.join(os.environ["SLURMTUNE_CHECKPOINT_DIR"], "final")
    if not os.path.exists(os.path.join(final, "COMPLETE")):
        raise SystemExit(f"no complete final checkpoint in {final}")
    with open(os.path.join(final, "slurmtune.json")) as f:
        meta = json.load(f)
    tokenizer = AutoTokenizer.from_pretrained(final)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if meta.get("lora"):
        from peft import PeftModel

        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(args.model or meta["base_model"]), final)
    else:
        model = AutoModelForCausalLM.from_pretrained(final)
    model.to(device).eval()
    records = read_records(os.path.join(os.environ["SLURMTUNE_DATA_DIR"], "validation.jsonl"))
    if not records:
        raise SystemExit("validation split is empty")
    out_dir = os.environ["SLURMTUNE_EVAL_DIR"]
    os.makedirs(out_dir, exist_ok=True)
    nll_total, tok_total = 0.0, 0
    with torch.no_grad(), open(os.path.join(out_dir, "nll.jsonl.tmp"), "w") as nf, \
            open(os.path.join(out_dir, "predictions.jsonl.tmp"), "w") as pf:
        for i, rec in enumerate(records):
            text = record_text(rec, tokenizer)
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=int(hp["max_seq_length"]))["input_ids"].to(device)
            if ids.shape[1] > 1:
                loss = model(input_ids=ids, labels=ids).loss.item()
                n = ids.shape[1] - 1
                nf.write(json.dumps({"nll_sum": loss * n, "tokens": n}) + "\n")
                nll_total += loss * n
                tok_total += n
            if i < int(hp["eval_records"]) and ids.shape[1] > 2:
                cut = ids.shape[1] // 2
                gen = model.generate(ids[:, :cut], max_new_tokens=min(int(hp["max_new_tokens"]), ids.shape[1] - cut),
                                     do_sample=False, pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
                pf.write(json.dumps({
                    "prompt": tokenizer.decode(ids[0, :cut], skip_special_tokens=True),
                    "prediction": tokenizer.decode(gen[0, cut:], skip_special_tokens=True),
                    "reference": tokenizer.decode(ids[0, cut:], skip_special_tokens=True),
                }) + "\n")
    for name in ("nll.jsonl", "predictions.jsonl"):
        os.replace(os.path.join(out_dir, name + ".tmp"), os.path.join(out_dir, name))
    ppl = math.exp(nll_total / tok_total) if tok_total else float("inf")
    log(f"validation: {len(records)} records, {tok_total} tokens, perplexity {ppl:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["train", "eval"])
    ap.add_argument("--model", help="HF model id or path (default: model.base of the pipeline)")
    args = ap.parse_args()
    train(args) if args.mode == "train" else evaluate(args)


if __name__ == "__main__":
    sys.exit(main())
