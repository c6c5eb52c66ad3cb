#!/usr/bin/env python3
"""The same SchNet as mdrun's (F, blocks, Gaussian basis, cosine cutoff, shifted softplus,
F -> F/2 -> 1 readout, per-species reference energies, output scaled by the force RMS), trained
the same way (loss 100 * mean((dE/N)^2) + mean(dF^2), forces by autograd with create_graph,
Adam, batches of 8), to time training throughput against `mdrun train` on the same data.

  benches/pytorch/schnet_train.py DATA.extxyz [--epochs 5] [--threads 2] [--features 64] ...
Prints `structures/s: X` (and per-epoch validation-free timings) to stdout.
"""
import argparse
import math
import time

import numpy as np
import torch


def read_extxyz(path):
    frames = []
    with open(path) as f:
        while True:
            line = f.readline()
            if not line:
                break
            n = int(line)
            header = f.readline()
            energy = float(header.split("energy=")[1].split()[0])
            symbols, pos, forces = [], [], []
            for _ in range(n):
                p = f.readline().split()
                symbols.append(p[0])
                pos.append([float(x) for x in p[1:4]])
                forces.append([float(x) for x in p[4:7]])
            frames.append((symbols, np.array(pos), energy, np.array(forces)))
    return frames


def ssp(x):
    return torch.nn.functional.softplus(x) - math.log(2.0)


class SchNet(torch.nn.Module):
    def __init__(self, n_species, features, blocks, n_rbf, cutoff):
        super().__init__()
        self.cutoff, self.n_rbf = cutoff, n_rbf
        self.embedding = torch.nn.Embedding(n_species, features)
        self.blocks = torch.nn.ModuleList()
        for _ in range(blocks):
            self.blocks.append(torch.nn.ModuleDict({
                "filter1": torch.nn.Linear(n_rbf, features), "filter2": torch.nn.Linear(features, features),
                "input": torch.nn.Linear(features, features, bias=False),
                "out1": torch.nn.Linear(features, features), "out2": torch.nn.Linear(features, features),
            }))
        self.readout1 = torch.nn.Linear(features, features // 2)
        self.readout2 = torch.nn.Linear(features // 2, 1)

    def forward(self, species, positions, src, dst, structure, n_structures, reference, scale):
        r = positions[dst] - positions[src]
        d = r.norm(dim=1, keepdim=True)
        width = self.cutoff / (self.n_rbf - 1)
        centres = torch.arange(self.n_rbf, dtype=d.dtype) * width
        g = torch.exp(-0.5 * ((d - centres) / width) ** 2)
        fc = 0.5 * (torch.cos(math.pi * d / self.cutoff) + 1.0)
        x = self.embedding(species)
        for b in self.blocks:
            w = b["filter2"](ssp(b["filter1"](g))) * fc
            m = torch.zeros_like(x).index_add_(0, src, b["input"](x)[dst] * w)
            x = x + b["out2"](ssp(b["out1"](m)))
        atomic = self.readout2(ssp(self.readout1(x))) * scale + reference[species].unsqueeze(1)
        return torch.zeros(n_structures, 1, dtype=x.dtype).index_add_(0, structure, atomic)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--rbf", type=int, default=20)
    ap.add_argument("--cutoff", type=float, default=5.0)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    frames = read_extxyz(args.data)
    species_list = sorted({s for f in frames for s in f[0]})
    index = {s: i for i, s in enumerate(species_list)}
    # Reference energies by least squares, as mdrun does.
    a = np.array([[sum(1 for s in f[0] if s == sp) for sp in species_list] for f in frames], float)
    e = np.array([f[2] for f in frames])
    reference = torch.tensor(np.linalg.lstsq(a, e, rcond=None)[0], dtype=torch.float32)
    scale = float(np.sqrt(np.mean(np.concatenate([f[3].ravel() for f in frames]) ** 2)))
    model = SchNet(len(species_list), args.features, args.blocks, args.rbf, args.cutoff)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def batch(fs):
        species, pos, src, dst, structure, energies, forces, counts = [], [], [], [], [], [], [], []
        offset = 0
        for k, (sym, p, en, fo) in enumerate(fs):
            n = len(sym)
            dist = np.linalg.norm(p[None, :, :] - p[:, None, :], axis=2)
            i, j = np.nonzero((dist < args.cutoff) & ~np.eye(n, dtype=bool))
            src.append(i + offset); dst.append(j + offset)
            species += [index[s] for s in sym]; pos.append(p); structure += [k] * n
            energies.append(en); forces.append(fo); counts.append(n)
            offset += n
        t = lambda x, dt=torch.float32: torch.tensor(np.concatenate(x) if isinstance(x[0], np.ndarray) else x, dtype=dt)
        return (t(species, torch.long), t(pos), t(src, torch.long), t(dst, torch.long), t(structure, torch.long),
                len(fs), t(energies), t(forces), t(counts))

    order = np.arange(len(frames))
    rng = np.random.default_rng(1)
    seen, start = 0, time.perf_counter()
    for epoch in range(args.epochs):
        rng.shuffle(order)
        t0 = time.perf_counter()
        for k in range(0, len(order), args.batch_size):
            species, pos, src, dst, structure, ns, energies, forces, counts = batch([frames[i] for i in order[k:k + args.batch_size]])
            pos.requires_grad_(True)
            energy = model(species, pos, src, dst, structure, ns, reference, scale)
            pred_f = -torch.autograd.grad(energy.sum(), pos, create_graph=True)[0]
            loss = 100.0 * (((energy.squeeze(1) - energies) / counts) ** 2).mean() + ((pred_f - forces) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += ns
        print(f"epoch {epoch + 1}: {time.perf_counter() - t0:.2f} s, loss {loss.item():.4e}")
    print(f"structures/s: {seen / (time.perf_counter() - start):.1f}")


if __name__ == "__main__":
    main()
