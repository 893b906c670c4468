"""All-reduce over gloo with ranks taken from Slurm's srun environment."""
import os
import socket

import torch
import torch.distributed as dist

rank = int(os.environ["SLURM_PROCID"])
world = int(os.environ["SLURM_NTASKS"])
os.environ["RANK"] = str(rank)
os.environ["LOCAL_RANK"] = os.environ["SLURM_LOCALID"]
os.environ["WORLD_SIZE"] = str(world)
dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world)
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
want = world * (world + 1) / 2
assert t.item() == want, (t.item(), want)
print(f"rank {rank}/{world} on {socket.gethostname()}: allreduce ok ({t.item():.0f})", flush=True)
dist.destroy_process_group()
