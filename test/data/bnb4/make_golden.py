# Golden bitsandbytes 4-bit quantisation, made by bitsandbytes' own algorithm run by real PyTorch (the independent
# reference for test/quant4.test.ts). The functions below are copied from bitsandbytes (github.com/bitsandbytes-
# foundation/bitsandbytes @ 95f9af30, MIT): create_dynamic_map and get_4bit_type (bitsandbytes/functional.py), the
# default backend's quantize_4bit / quantize_blockwise / dequantize kernels (bitsandbytes/backends/default/ops.py),
# and quantize_4bit's compress_statistics path (functional.py). Only the torch.compile wrappers are left out.
#   /usr/bin/python3 make_golden.py   (Debian's python3-torch 1.13; writes the files beside this script)
# Files: input.f32 (the values), golden.json (sizes and offsets), and per case <case>.bin: packed nibbles, absmax
# (f32, or u8 codes + nested absmax f32 + offset), and the dequantised values (f32), laid out as golden.json says.
import json, os, struct
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
    data = []
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    for i in range(max_exponent_bits):
        fraction_items = int(
            2 ** (i + non_sign_bits - max_exponent_bits) + 1
            if signed
            else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1,
        )
        boundaries = torch.linspace(0.1, 1, fraction_items, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    if additional_items > 0:
        boundaries = torch.linspace(0.1, 1, additional_items + 1, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    data.append(0)
    data.append(1.0)
    assert len(data) == 2**total_bits
    gap = 256 - len(data)
    for i in range(gap):
        data.append(0)
    data.sort()
    return torch.tensor(data, dtype=torch.float32)


def get_4bit_type(typename):
    if typename == "nf4":
        data = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]
    else:
        data = [0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0, -0, -0.0625, -8.0, -12.0, -4.0, -6.0, -2.0, -3.0]
    data = torch.tensor(data)
    data.div_(data.abs().max())
    return data


def quantize_blockwise(A, code, blocksize):  # backends/default/ops.py
    A_flat = A.reshape(-1).float()
    n = A_flat.numel()
    rem = n % blocksize
    full = n - rem
    blocks = full // blocksize
    A_com = A_flat[:full].reshape(blocks, blocksize)
    absmax = A_com.abs().max(dim=-1)[0]
    scaled = torch.clamp(A_com * (1.0 / absmax.clamp(min=1e-38).view(-1, 1)), -1, 1).reshape(-1)
    if rem:
        am = A_flat[full:].abs().max().clamp(min=1e-38)
        absmax = torch.cat([absmax, am.unsqueeze(0)])
        scaled = torch.cat([scaled, torch.clamp(A_flat[full:] / am, -1, 1)])
    bounds = (code[:-1] + code[1:]) / 2
    q = torch.bucketize(scaled, bounds, out_int32=True).to(torch.uint8)
    return q.reshape(A.shape), absmax


def dequantize_blockwise(A_flat, absmax, code, blocksize):  # backends/default/ops.py (dtype float32)
    n = A_flat.numel()
    out = code[A_flat.to(torch.int64)]
    rem = n % blocksize
    if rem == 0:
        return (out.reshape(-1, blocksize) * absmax.view(-1, 1)).reshape(n)
    full = n - rem
    blocks = full // blocksize
    return torch.cat([(out[:full].reshape(blocks, blocksize) * absmax[:blocks].view(-1, 1)).reshape(full), out[full:] * absmax[blocks]])


def quantize_4bit(A, blocksize, quant_type):  # backends/default/ops.py (quant_storage uint8)
    code = get_4bit_type(quant_type)
    order = torch.argsort(code)
    bounds = (code[order[:-1]] + code[order[1:]]) / 2
    A_flat = A.reshape(-1).float()
    n = A_flat.numel()
    rem = n % blocksize
    full = n - rem
    blocks = full // blocksize
    A_com = A_flat[:full].reshape(blocks, blocksize)
    absmax = A_com.abs().max(dim=-1)[0]
    scaled = torch.clamp(A_com * (1.0 / absmax.clamp(min=1e-38).view(-1, 1)), -1, 1).reshape(-1)
    if rem:
        am = A_flat[full:].abs().max().clamp(min=1e-38)
        absmax = torch.cat([absmax, am.unsqueeze(0)])
        scaled = torch.cat([scaled, torch.clamp(A_flat[full:] / am, -1, 1)])
    if scaled.numel() % 2:
        scaled = torch.nn.functional.pad(scaled, (0, 1))
    q = torch.bucketize(scaled, bounds, out_int32=True)
    if quant_type != "nf4":
        q = order[q.long()]  # (.long(): torch 1.13 indexes with int64 only)
    q8 = q.to(torch.uint8)
    packed = ((q8[::2] << 4) | q8[1::2]).unsqueeze(1)
    return packed, absmax


def dequantize_4bit(A_flat, absmax, code, blocksize, n):  # backends/default/ops.py (dtype float32)
    out_dq = torch.empty(A_flat.size(0) * 2, dtype=torch.int32)
    out_dq[1::2] = A_flat & 0xF
    out_dq[::2] = A_flat >> 4
    out_dq = code[out_dq.long()][:n]
    rem = n % blocksize
    if rem:
        full = n - rem
        blocks = full // blocksize
        out = torch.empty(n, dtype=torch.float32)
        out[:full] = (out_dq[:full].view(-1, blocksize) * absmax[:blocks].view(-1, 1)).reshape(full)
        out[full:] = out_dq[full:] * absmax[blocks]
        return out
    return (out_dq.view(-1, blocksize) * absmax.view(-1, 1)).reshape(n)


def inputs():
    g = torch.Generator().manual_seed(23)
    parts = []
    # 300 blocks of 64 and a 33-element tail (odd count: a padding nibble; 2 blocks of 256 absmax for double quant)
    x = torch.randn(64 * 300 + 33, generator=g) * 0.02
    x[64 * 3:64 * 4] = 0.0                       # an all-zero block
    x[64 * 5 + 7] = 0.5                          # an outlier
    x[64 * 9:64 * 10] = x[64 * 9:64 * 10].abs()  # all positive
    x[64 * 11:64 * 12] = torch.linspace(-3e-3, 1e-3, 64)
    # blocks whose absmax is 1.0 and whose other values sit exactly on the codes' midpoints (ties) and next to them
    for b, qt in ((13, "nf4"), (14, "fp4")):
        code = get_4bit_type(qt)
        srt = code.sort().values
        mids = (srt[:-1] + srt[1:]) / 2
        blk = torch.zeros(64)
        blk[0] = 1.0
        vals = torch.cat([mids, -mids, torch.nextafter(mids, torch.ones_like(mids)), torch.nextafter(mids, -torch.ones_like(mids))])
        blk[1:1 + min(63, vals.numel())] = vals[:63]
        x[64 * b:64 * (b + 1)] = blk
    parts.append(x)
    # the same values rounded to bf16 (what a bf16 checkpoint holds)
    parts.append(x.to(torch.bfloat16).float())
    return torch.cat(parts), [x.numel(), x.numel()]


def main():
    data, sizes = inputs()
    data.numpy().astype("<f4").tofile(os.path.join(HERE, "input.f32"))
    dyn = create_dynamic_map(signed=True)
    dyn.numpy().astype("<f4").tofile(os.path.join(HERE, "dynamic_map.f32"))
    manifest = {"inputs": [], "torch": torch.__version__}
    start = 0
    for i, n in enumerate(sizes):
        A = data[start:start + n]
        for qt in ("nf4", "fp4"):
            code = get_4bit_type(qt)
            packed, absmax = quantize_4bit(A, 64, qt)
            deq = dequantize_4bit(packed.reshape(-1), absmax, code, 64, n)
            # double quant (functional.quantize_4bit, compress_statistics=True)
            offset = absmax.mean()
            qabs, nested = quantize_blockwise(absmax - offset, dyn, 256)
            absmax2 = dequantize_blockwise(qabs, nested, dyn, 256)
            absmax2 += offset
            deq2 = dequantize_4bit(packed.reshape(-1), absmax2, code, 64, n)
            name = f"in{i}_{qt}"
            blobs = [("packed", packed.numpy().tobytes()), ("absmax", absmax.numpy().astype("<f4").tobytes()),
                     ("dequant", deq.numpy().astype("<f4").tobytes()), ("absmax_codes", qabs.numpy().tobytes()),
                     ("nested_absmax", nested.numpy().astype("<f4").tobytes()), ("dequant_dq", deq2.numpy().astype("<f4").tobytes()),
                     ("code", code.numpy().astype("<f4").tobytes())]
            off, layout = 0, {}
            with open(os.path.join(HERE, name + ".bin"), "wb") as f:
                for k, b in blobs:
                    layout[k] = [off, len(b)]
                    f.write(b)
                    off += len(b)
            manifest["inputs"].append({"case": name, "start": start, "n": n, "quant_type": qt,
                                       "offset": struct.unpack("<f", struct.pack("<f", float(offset)))[0], "layout": layout})
        start += n
    with open(os.path.join(HERE, "golden.json"), "w") as f:
        json.dump(manifest, f, indent=1)


main()
