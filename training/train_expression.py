"""Train facewise's 7-class facial-expression model on FER2013 and export it to ONNX.

Data: ``--data-dir`` is either the FER2013 folder tree (``train/<class>/*.jpg`` and
``validation/<class>/*.jpg``, 48x48 grey) or the single-file pack written by ``training/pack_fer2013.py``.
Training uses the ``train`` split only; ``validation`` (FER2013 PublicTest) is used for reporting and for
model/epoch selection only.

The whole data set lives in one uint8 tensor on the training device and every augmentation runs there,
batched (random affine warp with ``affine_grid``/``grid_sample``: rotation, scale, shift, horizontal flip;
brightness/contrast jitter; random erasing; mixup or cutmix), so no DataLoader workers are needed.

Exported ONNX (opset 17):

* input  ``input``  float32 [N, 1, 48, 48]: the face crop as grey (``cv2.COLOR_BGR2GRAY``), resized to
  48x48 (``cv2.INTER_AREA`` when shrinking, ``cv2.INTER_LINEAR`` when enlarging), divided by 255 (0..1).
  The graph standardises internally ((x - 0.5) / 0.25).
* output ``logits`` float32 [N, 7], classes in alphabetical order (see ``CLASSES``). When exported with
  test-time flip and/or several members, the graph averages the logits of every member on the input and
  on its horizontal mirror.

Examples::

    # one model, fixed number of epochs
    python training/train_expression.py --data-dir .gpu/fer2013_jpeg.npz --out out/m0 --seed 0 --epochs 150
    # epochs chosen to fit a wall-clock budget (measured on a throw-away copy of the model first)
    python training/train_expression.py --data-dir .gpu/fer2013_jpeg.npz --out out/m0 --time-budget 360
    # ensemble several trained checkpoints into ONE onnx graph and evaluate it on validation
    python training/train_expression.py --data-dir ../shared/data/fer2013 --out out/ens \\
        --ensemble out/m0/model.pt out/m1/model.pt out/m2/model.pt
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as fn
from torch import Tensor, nn

try:
    import cv2
except ImportError:  # pragma: no cover - Pillow fallback for machines without OpenCV
    cv2 = None

LOG = logging.getLogger("train_expression")

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
SIZE = 48
MEAN, STD = 0.5, 0.25


# --------------------------------------------------------------------------------------------- data
def _decode(buf: np.ndarray) -> np.ndarray:
    if cv2 is None:
        import io

        from PIL import Image

        pil = Image.open(io.BytesIO(buf.tobytes())).convert("L")
        if pil.size != (SIZE, SIZE):
            pil = pil.resize((SIZE, SIZE), Image.Resampling.BILINEAR)
        return np.asarray(pil, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError("undecodable JPEG")
    if img.shape != (SIZE, SIZE):
        interp = cv2.INTER_AREA if min(img.shape) > SIZE else cv2.INTER_LINEAR
        img = cv2.resize(img, (SIZE, SIZE), interpolation=interp)
    return img


def load_split(data_dir: Path, split: str, limit: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 [N, 48, 48], labels int64 [N]) from the folder tree or the ``.npz`` pack."""
    images: list[np.ndarray] = []
    labels: list[int] = []
    if data_dir.is_file():
        with np.load(data_dir) as pack:
            classes = tuple(str(c) for c in pack["classes"])
            if classes != CLASSES:
                raise ValueError(f"pack classes {classes} != {CLASSES}")
            blob = pack[f"{split}_blob"]
            offsets = pack[f"{split}_offsets"]
            labels = pack[f"{split}_labels"].tolist()
        for i in range(len(labels)):
            images.append(_decode(blob[offsets[i]:offsets[i + 1]]))
    else:
        for label, cls in enumerate(CLASSES):
            files = sorted((data_dir / split / cls).glob("*.jpg"))
            if not files:
                raise FileNotFoundError(f"no JPEG files in {data_dir / split / cls}")
            for f in files:
                images.append(_decode(np.fromfile(f, dtype=np.uint8)))
                labels.append(label)
    x = np.stack(images)
    y = np.asarray(labels, dtype=np.int64)
    if limit and limit < len(y):  # stratification is not needed for a debugging subset
        idx = np.random.default_rng(seed).permutation(len(y))[:limit]
        x, y = x[idx], y[idx]
    return x, y


# -------------------------------------------------------------------------------------------- model
class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        y = fn.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return fn.relu(y + self.shortcut(x), inplace=True)


class ExpressionNet(nn.Module):
    """Small ResNet for 48x48 grey faces: stem at full resolution, 4 stages (48, 24, 12, 6 px)."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256), blocks: tuple[int, ...] = (1, 1, 2, 1),
                 num_classes: int = len(CLASSES), dropout: float = 0.3) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN))
        self.register_buffer("std", torch.tensor(STD))
        layers: list[nn.Module] = [nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                   nn.ReLU(inplace=True)]
        cin = widths[0]
        for stage, (w, n) in enumerate(zip(widths, blocks, strict=True)):
            for j in range(n):
                layers.append(BasicBlock(cin, w, 2 if (j == 0 and stage > 0) else 1))
                cin = w
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():  # no zero-init of the residual BN: it slowed this shallow net down a lot
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = (x - self.mean) / self.std
        x = self.features(x)
        x = torch.flatten(fn.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(self.dropout(x))


class EnsembleTTA(nn.Module):
    """Averages the logits of every member on the input and (optionally) on its horizontal mirror."""

    def __init__(self, members: list[nn.Module], flip: bool = True) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.flip = flip

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        if self.flip:
            x = torch.cat([x, torch.flip(x, dims=[3])], dim=0)
        logits = torch.stack([m(x) for m in self.members], dim=0).mean(dim=0)
        if self.flip:
            logits = (logits[:n] + logits[n:]) * 0.5
        return logits


# ------------------------------------------------------------------------------------- augmentation
def random_affine(x: Tensor, rot_deg: float, scale: tuple[float, float], shift: float) -> Tensor:
    """Rotation, isotropic scale, shift (fraction of the size) and 50 % horizontal flip, per sample."""
    b = x.shape[0]
    dev = x.device
    ang = (torch.rand(b, device=dev) * 2 - 1) * math.radians(rot_deg)
    s = torch.empty(b, device=dev).uniform_(*scale)
    flip = torch.where(torch.rand(b, device=dev) < 0.5, -1.0, 1.0)
    t = (torch.rand(b, 2, device=dev) * 2 - 1) * shift * 2  # normalised coordinates span 2
    cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
    theta = torch.stack([torch.stack([cos * flip, -sin, t[:, 0]], 1),
                         torch.stack([sin * flip, cos, t[:, 1]], 1)], 1)
    grid = fn.affine_grid(theta, list(x.shape), align_corners=False)
    return fn.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def photometric(x: Tensor, contrast: float, brightness: float) -> Tensor:
    b = x.shape[0]
    c = 1 + (torch.rand(b, 1, 1, 1, device=x.device) * 2 - 1) * contrast
    d = (torch.rand(b, 1, 1, 1, device=x.device) * 2 - 1) * brightness
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - m) * c + m + d).clamp_(0, 1)


def _boxes(b: int, h: int, w: int, area: Tensor, ratio: Tensor, dev: torch.device) -> tuple[Tensor, ...]:
    bh = (torch.sqrt(area * ratio) * h).clamp(1, h)
    bw = (torch.sqrt(area / ratio) * w).clamp(1, w)
    cy = torch.rand(b, device=dev) * h
    cx = torch.rand(b, device=dev) * w
    y0 = (cy - bh / 2).clamp(0, h)
    y1 = (cy + bh / 2).clamp(0, h)
    x0 = (cx - bw / 2).clamp(0, w)
    x1 = (cx + bw / 2).clamp(0, w)
    return y0, y1, x0, x1


def _box_mask(y0: Tensor, y1: Tensor, x0: Tensor, x1: Tensor, h: int, w: int) -> Tensor:
    dev = y0.device
    yy = torch.arange(h, device=dev).view(1, h, 1) + 0.5
    xx = torch.arange(w, device=dev).view(1, 1, w) + 0.5
    return ((yy >= y0.view(-1, 1, 1)) & (yy < y1.view(-1, 1, 1)) &
            (xx >= x0.view(-1, 1, 1)) & (xx < x1.view(-1, 1, 1))).unsqueeze(1)


def random_erasing(x: Tensor, p: float, area: tuple[float, float] = (0.02, 0.2)) -> Tensor:
    b, _, h, w = x.shape
    dev = x.device
    a = torch.empty(b, device=dev).uniform_(*area)
    r = torch.exp(torch.empty(b, device=dev).uniform_(math.log(0.3), math.log(3.3)))
    mask = _box_mask(*_boxes(b, h, w, a, r, dev), h, w)
    mask &= (torch.rand(b, device=dev) < p).view(-1, 1, 1, 1)
    return torch.where(mask, torch.rand_like(x), x)


def mix(x: Tensor, y: Tensor, p: float, mixup_alpha: float, cutmix_alpha: float
        ) -> tuple[Tensor, Tensor, Tensor, float]:
    """With probability p, mixup or cutmix (50/50) the batch with a shuffled copy of itself.

    Returns (x, y_a, y_b, lam); the loss is ``lam * ce(y_a) + (1 - lam) * ce(y_b)``.
    """
    if p <= 0 or random.random() >= p:
        return x, y, y, 1.0
    perm = torch.randperm(x.shape[0], device=x.device)
    if random.random() < 0.5:
        lam = float(np.random.beta(mixup_alpha, mixup_alpha))
        return lam * x + (1 - lam) * x[perm], y, y[perm], lam
    lam = float(np.random.beta(cutmix_alpha, cutmix_alpha))
    _, _, h, w = x.shape
    cut = math.sqrt(1 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = random.randrange(h), random.randrange(w)
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, y, y[perm], lam


def augment(xb: Tensor, args: argparse.Namespace) -> Tensor:
    x = xb.float().div_(255).unsqueeze(1)
    x = random_affine(x, args.rot, (args.scale_min, args.scale_max), args.shift)
    x = photometric(x, args.contrast, args.brightness)
    return random_erasing(x, args.erase_p)


# --------------------------------------------------------------------------------------- train/eval
@torch.no_grad()
def predict_logits(model: nn.Module, x_u8: Tensor, device: torch.device, flip: bool,
                   bs: int = 1024) -> Tensor:
    model.eval()
    out = []
    for i in range(0, x_u8.shape[0], bs):
        x = x_u8[i:i + bs].to(device).float().div_(255).unsqueeze(1)
        with _autocast(device):
            logit = model(_cl(x, device)).float()
            if flip:
                logit = (logit + model(_cl(torch.flip(x, dims=[3]), device)).float()) * 0.5
        out.append(logit)
    return torch.cat(out)


def _cl(x: Tensor, device: torch.device) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


def _autocast(device: torch.device) -> Any:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def accuracy_report(logits: Tensor, y: Tensor) -> dict[str, Any]:
    pred = logits.argmax(1).cpu()
    y = y.cpu()
    recall = {c: float((pred[y == i] == i).float().mean()) if (y == i).any() else float("nan")
              for i, c in enumerate(CLASSES)}
    return {"accuracy": float((pred == y).float().mean()), "per_class_recall": recall, "n": int(len(y))}


def make_optimizer(model: nn.Module, args: argparse.Namespace) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    groups = [{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}]
    if args.opt == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=args.lr)


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def train_step(model: nn.Module, opt: torch.optim.Optimizer, xb: Tensor, yb: Tensor,
               args: argparse.Namespace, device: torch.device) -> Tensor:
    x = augment(xb, args)
    x, ya, yb2, lam = mix(x, yb, args.mix_p, args.mixup_alpha, args.cutmix_alpha)
    with _autocast(device):
        out = model(_cl(x, device))
    out = out.float()
    loss = lam * fn.cross_entropy(out, ya, label_smoothing=args.label_smoothing)
    if lam < 1.0:
        loss = loss + (1 - lam) * fn.cross_entropy(out, yb2, label_smoothing=args.label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(args: argparse.Namespace) -> ExpressionNet:
    return ExpressionNet(tuple(args.widths), tuple(args.blocks), dropout=args.dropout)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure_epochs(args: argparse.Namespace, x_tr: Tensor, y_tr: Tensor, x_va: Tensor,
                   device: torch.device, budget: float) -> int:
    """Time training steps and one evaluation on a throw-away model; return the epochs that fit."""
    model = build_model(args).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, args)
    model.train()
    bs = args.batch_size
    n = x_tr.shape[0]
    warm, steps = 10, args.bench_steps
    for i in range(warm + steps):
        if i == warm:
            _sync(device)
            t0 = time.perf_counter()
        idx = torch.randint(0, n, (bs,), device=device)
        train_step(model, opt, x_tr[idx], y_tr[idx], args, device)
    _sync(device)
    t_step = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    predict_logits(model, x_va, device, flip=True)
    _sync(device)
    t_eval = (time.perf_counter() - t0) * 1.2 / max(1, args.eval_every)
    t_epoch = (n // bs) * t_step + t_eval
    epochs = int(budget * args.budget_safety / t_epoch)
    LOG.info("benchmark: %.2f ms/step, %.2f s/epoch (eval incl.) -> %d epochs fit in %.0f s",
             t_step * 1e3, t_epoch, epochs, budget)
    del model, opt
    return max(1, min(epochs, args.max_epochs))


def wait_for_peers(barrier_dir: Path, n: int, seed: int, timeout: float = 120.0) -> None:
    """File barrier for runs sharing one GPU: start timing/training only when all n have loaded data."""
    barrier_dir.mkdir(parents=True, exist_ok=True)
    (barrier_dir / f"ready-{seed}-{os.getpid()}").touch()
    t0 = time.perf_counter()
    while len(list(barrier_dir.glob("ready-*"))) < n and time.perf_counter() - t0 < timeout:
        time.sleep(0.2)
    LOG.info("barrier: %d of %d runs ready after %.1f s", len(list(barrier_dir.glob("ready-*"))), n,
             time.perf_counter() - t0)


def train(args: argparse.Namespace) -> None:
    t_start = time.perf_counter()
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    x_tr_np, y_tr_np = load_split(Path(args.data_dir), "train", args.limit_train, args.seed)
    x_va_np, y_va_np = load_split(Path(args.data_dir), "validation", args.limit_val, args.seed)
    LOG.info("data: train %s, validation %s, loaded in %.1f s", x_tr_np.shape, x_va_np.shape,
             time.perf_counter() - t_start)
    x_tr = torch.from_numpy(x_tr_np).to(device)
    y_tr = torch.from_numpy(y_tr_np).to(device)
    x_va = torch.from_numpy(x_va_np).to(device)
    y_va = torch.from_numpy(y_va_np)

    if args.barrier_dir:
        wait_for_peers(Path(args.barrier_dir), args.barrier_n, args.seed)

    epochs = args.epochs
    if epochs <= 0:
        if args.time_budget <= 0:
            raise SystemExit("give --epochs N or --time-budget SECONDS")
        seed_everything(args.seed + 1000)
        remaining = args.time_budget - (time.perf_counter() - t_start)
        epochs = measure_epochs(args, x_tr, y_tr, x_va, device, remaining)

    seed_everything(args.seed)
    model = build_model(args).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, args)
    n = x_tr.shape[0]
    bs = args.batch_size
    steps_per_epoch = n // bs
    total = epochs * steps_per_epoch
    warmup = args.warmup_epochs * steps_per_epoch
    LOG.info("training %d epochs x %d steps (batch %d), %.2fM parameters", epochs, steps_per_epoch, bs,
             sum(p.numel() for p in model.parameters()) / 1e6)

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"acc": -1.0, "epoch": 0, "state": None}
    step = 0
    stopped_early = False
    for epoch in range(1, epochs + 1):
        model.train()
        t_ep = time.perf_counter()
        perm = torch.randperm(n, device=device)
        loss_sum = torch.zeros((), device=device)
        for i in range(steps_per_epoch):
            lr = lr_at(step, total, warmup, args.lr)
            for g in opt.param_groups:
                g["lr"] = lr
            idx = perm[i * bs:(i + 1) * bs]
            loss_sum += train_step(model, opt, x_tr[idx], y_tr[idx], args, device)
            step += 1
        train_loss = float(loss_sum) / steps_per_epoch
        row: dict[str, Any] = {"epoch": epoch, "lr": lr, "train_loss": round(train_loss, 4)}
        if epoch % args.eval_every == 0 or epoch == epochs:
            acc = accuracy_report(predict_logits(model, x_va, device, flip=False), y_va)["accuracy"]
            acc_f = accuracy_report(predict_logits(model, x_va, device, flip=True), y_va)["accuracy"]
            row.update(val_acc=round(acc, 4), val_acc_flip=round(acc_f, 4))
            if acc_f > best["acc"]:
                best = {"acc": acc_f, "epoch": epoch,
                        "state": {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()}}
        row["epoch_s"] = round(time.perf_counter() - t_ep, 2)
        history.append(row)
        LOG.info("epoch %3d/%d  lr %.4f  loss %.4f  val %s  val+flip %s  (%.1f s, total %.0f s)",
                 epoch, epochs, lr, train_loss, row.get("val_acc", "-"), row.get("val_acc_flip", "-"),
                 row["epoch_s"], time.perf_counter() - t_start)
        if args.deadline and time.perf_counter() - t_start > args.deadline and epoch < epochs:
            LOG.warning("deadline of %.0f s passed: stopping after epoch %d of %d",
                        args.deadline, epoch, epochs)
            stopped_early = True
            break

    final_state = {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()}
    model_cfg = {"widths": list(args.widths), "blocks": list(args.blocks), "dropout": args.dropout}
    final_logits = predict_logits(model, x_va, device, flip=True)
    final = accuracy_report(final_logits, y_va)
    metrics = {
        "seed": args.seed, "epochs_planned": epochs, "epochs_run": history[-1]["epoch"],
        "stopped_early": stopped_early,
        "final_val_flip": final, "final_val_noflip": accuracy_report(
            predict_logits(model, x_va, device, flip=False), y_va),
        "best_val_flip": {"accuracy": best["acc"], "epoch": best["epoch"]},
        "train_seconds": round(time.perf_counter() - t_start, 1), "device": _device_name(device),
        "torch": str(torch.__version__), "args": vars(args), "history": history,
    }
    torch.save({"model_cfg": model_cfg, "final": final_state, "best": best["state"],
                "best_epoch": best["epoch"], "metrics": metrics}, out / "model.pt")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    LOG.info("final: val acc %.4f (flip TTA), %.4f (no flip); best epoch %d: %.4f; %.0f s",
             final["accuracy"], metrics["final_val_noflip"]["accuracy"], best["epoch"], best["acc"],
             metrics["train_seconds"])
    if not args.no_export:
        model.load_state_dict(final_state)
        export_onnx([model], out / "expression-fer7.onnx", flip=True)
        if not args.no_verify:
            verify_onnx(out / "expression-fer7.onnx", x_va_np, y_va_np, final_logits.cpu().numpy())


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} logical cores)"


# ----------------------------------------------------------------------------------------- export
def export_onnx(members: list[nn.Module], path: Path, flip: bool = True) -> None:
    cpu_members = []
    for m in members:
        m = copy.deepcopy(m).float().cpu().to(memory_format=torch.contiguous_format).eval()
        cpu_members.append(m)
    net = EnsembleTTA(cpu_members, flip=flip).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(2, 1, SIZE, SIZE)
    torch.onnx.export(net, (dummy,), str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                      do_constant_folding=True, dynamo=False)
    LOG.info("exported %s (%d member(s), flip %s, %.2f MB)", path, len(members), flip,
             path.stat().st_size / 1e6)


def store_weights_fp16(path: Path, min_size: int = 1024) -> None:
    """Store the large float32 initializers of an ONNX file as float16, each followed by a Cast to float32.

    Halves the file; onnxruntime folds the Casts when it loads the graph, so inference still runs in
    float32 on weights rounded to float16 (a rounding error of ~1e-3 relative, checked by verify_onnx).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts = []
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_size:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}__fp16")
        graph.initializer.remove(init)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}__cast"))
    for node in reversed(casts):
        graph.node.insert(0, node)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    LOG.info("stored %d initializers as float16: %s is now %.2f MB", len(casts), path,
             path.stat().st_size / 1e6)


def verify_onnx(path: Path, x_va: np.ndarray, y_va: np.ndarray,
                ref_logits: np.ndarray | None) -> dict[str, Any]:
    """Evaluate the exported graph with onnxruntime (CPU) on validation; compare with the torch logits."""
    try:
        import onnxruntime as ort
    except ImportError:
        LOG.warning("onnxruntime missing: ONNX graph not verified")
        return {}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batches = [x_va[i:i + 512, None].astype(np.float32) / 255 for i in range(0, len(x_va), 512)]
    logits = np.concatenate([sess.run(["logits"], {"input": b})[0] for b in batches])
    report = accuracy_report(torch.from_numpy(logits), torch.from_numpy(y_va))
    if ref_logits is not None:  # may cover only the first len(ref_logits) images
        head = logits[:len(ref_logits)]
        diff = float(np.abs(head - ref_logits).max())
        agree = float((head.argmax(1) == ref_logits.argmax(1)).mean())
        report.update(max_abs_diff_vs_torch=diff, argmax_agreement_vs_torch=agree)
        LOG.info("onnxruntime: val acc %.4f, max |logit diff| vs torch %.4f, argmax agreement %.4f",
                 report["accuracy"], diff, agree)
    else:
        LOG.info("onnxruntime: val acc %.4f", report["accuracy"])
    return report


def ensemble(args: argparse.Namespace) -> None:
    """Load trained checkpoints, evaluate members and their ensemble on validation, export ONE graph."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x_va_np, y_va_np = load_split(Path(args.data_dir), "validation", args.limit_val, args.seed)
    x_va = torch.from_numpy(x_va_np)
    y_va = torch.from_numpy(y_va_np)
    device = torch.device("cpu")
    members: list[nn.Module] = []
    per_member = []
    for ckpt_path in args.ensemble:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        cfg = ckpt["model_cfg"]
        m = ExpressionNet(tuple(cfg["widths"]), tuple(cfg["blocks"]), dropout=cfg["dropout"])
        m.load_state_dict(ckpt[args.which])
        m.eval()
        trained = ckpt["metrics"]
        per_member.append({"checkpoint": str(ckpt_path), "seed": trained["seed"],
                           "epochs": trained["epochs_run"],
                           "val_acc_flip_at_training": trained["final_val_flip"]["accuracy"],
                           "args": trained["args"]})
        LOG.info("member %s (%s weights, seed %d, %d epochs): val acc %.4f (flip TTA, measured in training)",
                 ckpt_path, args.which, trained["seed"], trained["epochs_run"],
                 trained["final_val_flip"]["accuracy"])
        members.append(m)
    net = EnsembleTTA(members, flip=not args.no_flip).eval()
    n_ref = min(len(y_va), args.torch_check)  # torch on CPU is slow: reference logits on a prefix only
    ref = predict_logits(net, x_va[:n_ref], device, flip=False).numpy()
    onnx_path = out / "expression-fer7.onnx"
    export_onnx(members, onnx_path, flip=not args.no_flip)
    if args.fp16_weights:
        store_weights_fp16(onnx_path)
    report = verify_onnx(onnx_path, x_va_np, y_va_np, ref)
    LOG.info("ensemble of %d (onnxruntime): val acc %.4f; per-class recall %s", len(members),
             report["accuracy"], {k: round(v, 4) for k, v in report["per_class_recall"].items()})
    (out / "ensemble_metrics.json").write_text(json.dumps(
        {"members": per_member, "which": args.which, "flip": not args.no_flip,
         "fp16_weights": args.fp16_weights, "onnxruntime_val": report}, indent=1))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/data/fer2013",
                   help="FER2013 folder tree or the .npz pack from pack_fer2013.py")
    p.add_argument("--out", default="out/expression", help="output folder")
    p.add_argument("--epochs", type=int, default=0, help="0: as many as fit in --time-budget")
    p.add_argument("--time-budget", type=float, default=0.0, help="seconds (load + train) when --epochs 0")
    p.add_argument("--budget-safety", type=float, default=0.92, help="fraction of the budget planned")
    p.add_argument("--max-epochs", type=int, default=400)
    p.add_argument("--bench-steps", type=int, default=30)
    p.add_argument("--deadline", type=float, default=0.0, help="hard stop (seconds since start), 0: none")
    p.add_argument("--barrier-dir", default="", help="runs sharing a GPU: wait for --barrier-n peers here")
    p.add_argument("--barrier-n", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--opt", choices=("sgd", "adamw"), default="sgd")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--warmup-epochs", type=int, default=3)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256])
    p.add_argument("--blocks", type=int, nargs="+", default=[1, 1, 2, 1])
    p.add_argument("--rot", type=float, default=15.0, help="max rotation, degrees")
    p.add_argument("--scale-min", type=float, default=0.85)
    p.add_argument("--scale-max", type=float, default=1.15)
    p.add_argument("--shift", type=float, default=0.1, help="max shift, fraction of the image size")
    p.add_argument("--contrast", type=float, default=0.3)
    p.add_argument("--brightness", type=float, default=0.15)
    p.add_argument("--erase-p", type=float, default=0.5)
    p.add_argument("--mix-p", type=float, default=0.5, help="probability of mixup/cutmix per batch")
    p.add_argument("--mixup-alpha", type=float, default=0.4)
    p.add_argument("--cutmix-alpha", type=float, default=1.0)
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument("--limit-train", type=int, default=0, help="debug: use a random subset of train")
    p.add_argument("--limit-val", type=int, default=0, help="debug: use a random subset of validation")
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime check of the export")
    p.add_argument("--ensemble", nargs="+", default=None, metavar="CKPT",
                   help="no training: export the listed model.pt checkpoints as one averaged graph")
    p.add_argument("--which", choices=("final", "best"), default="final", help="weights used by --ensemble")
    p.add_argument("--torch-check", type=int, default=256,
                   help="--ensemble: images on which the onnx logits are compared with torch's")
    p.add_argument("--no-flip", action="store_true", help="--ensemble: export without test-time flip")
    p.add_argument("--fp16-weights", action="store_true",
                   help="--ensemble: store the weights as float16 in the file (compute stays float32)")
    args = p.parse_args(argv)
    if len(args.widths) != len(args.blocks):
        p.error("--widths and --blocks need the same length")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = out / ("ensemble.log" if args.ensemble else "train.log")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout), logging.FileHandler(log_file)]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", handlers=handlers)
    if args.threads:
        torch.set_num_threads(args.threads)
    LOG.info("torch %s, device %s, args %s", torch.__version__, args.device, vars(args))
    if args.ensemble:
        ensemble(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
