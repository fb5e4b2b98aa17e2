package dev.trilens.model;

import java.util.HashMap;
import java.util.Map;

/**
 * The parameters rearranged for the kernels: W_Q/W_K/W_V as one [D, H*Dh] matrix per layer, and the MLP and unembed
 * widths (d_mlp, d_vocab) padded with zeros to whole vectors, so no kernel needs a scalar tail. Training packs the
 * weights once per step and unpacks the summed gradient once per step.
 */
final class PackedParams {
    private enum Kind { COPY, HEADS, PAD_COLS }

    /** One parameter: where it is in each layout, and how it is rearranged (rows x cols -> rows x padded cols). */
    private record Entry(int src, int dst, int size, Kind kind, int a, int b, int c) {
    }

    final int dMlpPadded, dVocabPadded, size;
    private final Entry[] entries;
    private final Map<String, Integer> offsets = new HashMap<>();

    PackedParams(ParamLayout layout, ModelConfig cfg, int lanes) {
        dMlpPadded = roundUp(cfg.dMlp(), lanes);
        dVocabPadded = roundUp(cfg.dVocab(), lanes);
        int D = cfg.dModel(), H = cfg.nHeads(), Dh = cfg.dHead();
        entries = new Entry[layout.params().size()];
        int dst = 0, i = 0;
        for (ParamLayout.Param p : layout.params()) {
            String n = p.name();
            Entry e;
            if (n.endsWith("attn.W_Q") || n.endsWith("attn.W_K") || n.endsWith("attn.W_V")) {
                e = new Entry(p.offset(), dst, p.size(), Kind.HEADS, H, D, Dh);
            } else if (n.endsWith("mlp.W_in")) {
                e = new Entry(p.offset(), dst, D * dMlpPadded, Kind.PAD_COLS, D, cfg.dMlp(), dMlpPadded);
            } else if (n.endsWith("mlp.b_in")) {
                e = new Entry(p.offset(), dst, dMlpPadded, Kind.PAD_COLS, 1, cfg.dMlp(), dMlpPadded);
            } else if (n.endsWith("mlp.W_out")) {
                // extra rows at the end: the same row-major data followed by zeros
                e = new Entry(p.offset(), dst, dMlpPadded * D, Kind.PAD_COLS, 1, p.size(), dMlpPadded * D);
            } else if (n.equals(ParamLayout.W_U)) {
                e = new Entry(p.offset(), dst, D * dVocabPadded, Kind.PAD_COLS, D, cfg.dVocab(), dVocabPadded);
            } else if (n.equals(ParamLayout.B_U)) {
                e = new Entry(p.offset(), dst, dVocabPadded, Kind.PAD_COLS, 1, cfg.dVocab(), dVocabPadded);
            } else {
                e = new Entry(p.offset(), dst, p.size(), Kind.COPY, 0, 0, 0);
            }
            entries[i++] = e;
            offsets.put(n, dst);
            dst += e.size;
        }
        size = dst;
    }

    private static int roundUp(int n, int lanes) {
        return (n + lanes - 1) / lanes * lanes;
    }

    boolean has(String name) {
        return offsets.containsKey(name);
    }

    int offset(String name) {
        return offsets.get(name);
    }

    /** packed = rearranged params (padding zero). */
    void pack(float[] params, float[] packed) {
        for (Entry e : entries) {
            switch (e.kind) {
                case COPY -> System.arraycopy(params, e.src, packed, e.dst, e.size);
                case HEADS -> {
                    int H = e.a, D = e.b, Dh = e.c;
                    for (int h = 0; h < H; h++) {
                        for (int d = 0; d < D; d++) {
                            System.arraycopy(params, e.src + (h * D + d) * Dh, packed, e.dst + d * H * Dh + h * Dh, Dh);
                        }
                    }
                }
                case PAD_COLS -> {
                    java.util.Arrays.fill(packed, e.dst, e.dst + e.size, 0f);
                    for (int r = 0; r < e.a; r++) {
                        System.arraycopy(params, e.src + r * e.b, packed, e.dst + r * e.c, e.b);
                    }
                }
            }
        }
    }

    /** params = packed rearranged back (padding dropped). */
    void unpack(float[] packed, float[] params) {
        for (Entry e : entries) {
            switch (e.kind) {
                case COPY -> System.arraycopy(packed, e.dst, params, e.src, e.size);
                case HEADS -> {
                    int H = e.a, D = e.b, Dh = e.c;
                    for (int h = 0; h < H; h++) {
                        for (int d = 0; d < D; d++) {
                            System.arraycopy(packed, e.dst + d * H * Dh + h * Dh, params, e.src + (h * D + d) * Dh, Dh);
                        }
                    }
                }
                case PAD_COLS -> {
                    for (int r = 0; r < e.a; r++) {
                        System.arraycopy(packed, e.dst + r * e.c, params, e.src + r * e.b, e.b);
                    }
                }
            }
        }
    }
}
