#!/usr/bin/env python3
"""Energy and forces of an mdrun SchNet or PaiNN model in plain PyTorch, to time MD steps
against mdrun.

Loads the weights of an mdrun model (model.safetensors + model.json, backbone SchNet or PaiNN,
MCGM off) into the same network (SchNet as benches/pytorch/schnet_train.py; PaiNN as
src/ml/model.rs writes it, Schütt et al. 2021), tiles a periodic structure --repeat times,
builds the neighbour list once (periodic images included, numpy, not timed) and then times
--steps evaluations of energy + forces by autograd, the way a PyTorch MD driver (ASE
calculator, torchmd) runs the model: the filters are matrix products on every edge. The
positions are perturbed a little every step so nothing can be cached.

  benches/pytorch/model_md.py MODEL_DIR STRUCTURE.extxyz [--repeat 2] [--steps 20] [--threads 2]
Prints `energy_ev: E` of the untouched structure (to check the model is mdrun's) and
`seconds_per_step: T`.
"""
import argparse
import json
import math
import struct
import time

import numpy as np
import torch


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        dtype = {"F64": np.float64, "F32": np.float32}[info["dtype"]]
        out[name] = np.frombuffer(raw[base + a:base + b], dtype=dtype).reshape(info["shape"])
    return out


def read_frame(path):
    with open(path) as f:
        n = int(f.readline())
        header = f.readline()
        lattice = [float(x) for x in header.split('Lattice="')[1].split('"')[0].split()]
        rows = [f.readline().split() for _ in range(n)]
    return [r[0] for r in rows], np.array([[float(x) for x in r[1:4]] for r in rows]), np.array(lattice).reshape(3, 3)


def neighbours(pos, cell, cutoff):
    """All (i, j, shift) with |x_j + shift - x_i| < cutoff, i != j or shift != 0."""
    inv = np.linalg.inv(cell)
    reach = [int(math.ceil(cutoff * np.linalg.norm(inv[:, k]))) for k in range(3)]
    src, dst, shifts = [], [], []
    for a in range(-reach[0], reach[0] + 1):
        for b in range(-reach[1], reach[1] + 1):
            for c in range(-reach[2], reach[2] + 1):
                s = a * cell[0] + b * cell[1] + c * cell[2]
                d = pos[None, :, :] + s - pos[:, None, :]
                r2 = (d * d).sum(-1)
                mask = r2 < cutoff * cutoff
                if a == 0 and b == 0 and c == 0:
                    np.fill_diagonal(mask, False)
                i, j = np.nonzero(mask)
                src.append(i)
                dst.append(j)
                shifts.append(np.repeat(s[None, :], len(i), axis=0))
    return np.concatenate(src), np.concatenate(dst), np.concatenate(shifts)


def ssp(x):
    return torch.nn.functional.softplus(x) - math.log(2.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("structure")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    card = json.load(open(f"{args.model}/model.json"))
    cfg, norm = card["config"], card["normalization"]
    assert cfg["backbone"] in ("schnet", "painn") and cfg.get("mcgm") is None, "bare SchNet or PaiNN models only"
    w = {k: torch.tensor(v, dtype=torch.float32, device=args.device) for k, v in read_safetensors(f"{args.model}/model.safetensors").items()}
    symbols, pos, cell = read_frame(args.structure)
    n0 = len(pos)
    r = args.repeat
    shifts0 = [i * cell[0] + j * cell[1] + k * cell[2] for k in range(r) for j in range(r) for i in range(r)]
    pos = np.concatenate([pos + s for s in shifts0])
    symbols = symbols * (r ** 3)
    cell = cell * r
    zs = {"H": 1, "C": 6, "N": 7, "O": 8}
    species = torch.tensor([cfg["species"].index(zs[s]) for s in symbols], device=args.device)
    rc = cfg["cutoff"]
    src, dst, sh = neighbours(pos, cell, rc)
    dev = args.device
    src_t, dst_t = torch.tensor(src, device=dev), torch.tensor(dst, device=dev)
    sh_t = torch.tensor(sh, dtype=torch.float32, device=dev)
    reference = torch.tensor(norm["reference_energies"], dtype=torch.float64, device=dev)[species].sum()
    k = cfg["n_rbf"]
    width = rc / (k - 1)
    centres = torch.arange(k, dtype=torch.float32, device=dev) * width

    def lin(x, name, bias=True):
        y = x @ w[f"{name}.weight"]
        return y + w[f"{name}.bias"] if bias else y

    feat = cfg["features"]
    silu = torch.nn.functional.silu

    def energy(positions):
        rv = positions[dst_t] + sh_t - positions[src_t]
        d = rv.norm(dim=1, keepdim=True)
        g = torch.exp(-0.5 * ((d - centres) / width) ** 2)
        fc = 0.5 * (torch.cos(math.pi * d / rc) + 1.0) * (d < rc)
        x = w["embedding"][species]
        if cfg["backbone"] == "painn":
            rhat = rv / d
            mu = torch.zeros(x.shape[0], 3, feat, device=dev)
        for t in range(cfg["blocks"]):
            if cfg["backbone"] == "schnet":
                filt = lin(ssp(lin(g, f"block{t}.filter1")), f"block{t}.filter2") * fc
                m = torch.zeros_like(x).index_add_(0, src_t, lin(x, f"block{t}.input", False)[dst_t] * filt)
                x = x + lin(ssp(lin(m, f"block{t}.out1")), f"block{t}.out2")
                continue
            # PaiNN message: (a, b, c) = φ_j ⊙ W(d); q += Σ a, μ += Σ b r̂ + c μ_j.
            phi = lin(silu(lin(x, f"block{t}.message.phi1")), f"block{t}.message.phi2")
            filt = lin(g, f"block{t}.message.filter") * fc
            a, b, c = torch.split(phi[dst_t] * filt, feat, dim=1)
            x = x + torch.zeros_like(x).index_add_(0, src_t, a)
            dmu = b[:, None, :] * rhat[:, :, None] + c[:, None, :] * mu[dst_t]
            mu = mu + torch.zeros_like(mu).index_add_(0, src_t, dmu)
            # Update: U, V; (s1, s2, s3) = MLP([q, |V|]); μ += s2 U; q += s1 + s3 <U, V>.
            u = mu @ w[f"block{t}.update.u.weight"]
            v = mu @ w[f"block{t}.update.v.weight"]
            norm_v = torch.sqrt((v * v).sum(1) + 1e-8)
            s1, s2, s3 = torch.split(lin(silu(lin(torch.cat([x, norm_v], 1), f"block{t}.update.mlp1")), f"block{t}.update.mlp2"), feat, dim=1)
            x = x + s1 + s3 * (u * v).sum(1)
            mu = mu + s2[:, None, :] * u
        return (lin(ssp(lin(x, "readout1")), "readout2") * norm["energy_scale"]).sum()

    p = torch.tensor(pos, dtype=torch.float32, device=dev, requires_grad=True)
    e0 = energy(p).double() + reference
    print(f"atoms: {len(pos)} (x{r ** 3} of {n0}), edges: {len(src)}")
    print(f"energy_ev: {e0.item():.6f}")
    rng = np.random.default_rng(1)
    times = []
    for step in range(args.steps + 2):
        q = torch.tensor(pos + rng.normal(0, 1e-3, pos.shape), dtype=torch.float32, device=dev, requires_grad=True)
        t = time.perf_counter()
        e = energy(q)
        (f,) = torch.autograd.grad(-e, q)
        if dev != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    times = times[2:]  # warm-up
    print(f"seconds_per_step: {np.median(times):.6f}")


if __name__ == "__main__":
    main()
