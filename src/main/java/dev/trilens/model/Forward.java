package dev.trilens.model;

import dev.trilens.model.kernels.TensorOps;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The forward pass, written once for its two drivers: {@link HookedTransformer} (inference, hooks and cache) and
 * {@link Backprop} (training, followed by the backward pass).
 *
 * <p>A forward is a list of steps over one sequence. Each step runs one kernel and writes one activation, named by its
 * TransformerLens hook point ("blocks.0.attn.hook_pattern"; the last is "logits"); the activations of a sequence are
 * the regions of a {@link Frame}. The weights are read in {@link PackedParams}' layout: W_Q, W_K, W_V as one
 * [D, H*Dh] matrix per layer, d_mlp and d_vocab padded to the packing's width (training pads to whole vectors,
 * inference does not, so its activations have TransformerLens's shapes).
 *
 * <p>Two layouts exist only for training and are switched off whenever activations are observed (see {@link Options}):
 * attention held key-major, and layer 0's Q, K and V read from per-token and per-position tables.
 */
final class Forward {

    enum Kind {
        EMBED, POS_EMBED, EMBED_SUM, RESID_PRE, LN_SCALE, LN_NORMALIZED, QKV, QKV_FROM_TABLES, SCORES, PATTERN, Z,
        RESULT, ATTN_OUT, ATTN_OUT_FROM_RESULT, RESID_ADD, MLP_PRE, MLP_POST, MLP_OUT, LOGITS
    }

    /** One activation: its name and per-sequence shape (TransformerLens's, without the batch axis). */
    record Act(String name, int[] seqShape, int perSeq) {
    }

    /**
     * One step: what it computes, the activation it writes, the ones it reads (-1: none), and parameter offsets in the
     * packed layout (QKV_FROM_TABLES: p0 is 0, 1 or 2 for Q, K or V; LN steps: the weight and bias).
     */
    record Step(Kind kind, int out, int in0, int in1, int p0, int p1) {
    }

    /**
     * splitEmbed: hook_embed and hook_pos_embed as activations of their own (else resid_pre is gathered straight from
     * W_E and W_pos); perHeadResult: hook_result, each head's output (TransformerLens's use_attn_result); keyMajor:
     * scores and pattern stored [head, key, query] (training's faster kernels); tables: layer 0's Q, K, V read from the
     * per-token and per-position tables bound with {@link #bindTables} (only without LayerNorm).
     */
    record Options(boolean splitEmbed, boolean perHeadResult, boolean keyMajor, boolean tables) {
        static final Options INFERENCE = new Options(true, false, false, false);

        Options {
            if ((keyMajor || tables) && (splitEmbed || perHeadResult)) {
                throw new IllegalArgumentException("training layouts are for unobserved passes only");
            }
        }
    }

    final List<Act> acts;
    final List<Step> steps;
    private final Map<String, Integer> idByName;
    private final ModelConfig cfg;
    private final TensorOps ops;
    private final Options options;
    /** Positions per sequence, and the packed widths of d_mlp and d_vocab. */
    final int T, Mp, Vp;
    private float[] w;
    private float[] tableByToken, tableByPos;

    Forward(ModelConfig cfg, PackedParams packing, TensorOps ops, int T, Options options) {
        if (options.tables && cfg.layerNorm()) {
            throw new IllegalArgumentException("the embedding tables need a model without LayerNorm");
        }
        this.cfg = cfg;
        this.ops = ops;
        this.options = options;
        this.T = T;
        this.Mp = packing.dMlpPadded;
        this.Vp = packing.dVocabPadded;
        this.acts = new ArrayList<>();
        this.steps = new ArrayList<>();
        this.idByName = new HashMap<>();
        plan(packing);
    }

    /**
     * The same pass as planned, with nothing bound: the plan (activations, steps, names) is shared and never changes
     * once planned, so a caller may keep one planned pass and copy it per run rather than plan again (string
     * building, maps) each time.
     */
    Forward(Forward planned) {
        this.cfg = planned.cfg;
        this.ops = planned.ops;
        this.options = planned.options;
        this.T = planned.T;
        this.Mp = planned.Mp;
        this.Vp = planned.Vp;
        this.acts = planned.acts;
        this.steps = planned.steps;
        this.idByName = planned.idByName;
    }

    /** The packed weights the steps read (see {@link PackedParams#pack}); kept by reference. */
    void bindWeights(float[] packedWeights) {
        this.w = packedWeights;
    }

    /** Layer 0's tables: Q, K then V, each [d_vocab, H*Dh] by token and [n_ctx, H*Dh] by position, biases included. */
    void bindTables(float[] byToken, float[] byPos) {
        this.tableByToken = byToken;
        this.tableByPos = byPos;
    }

    boolean has(String name) {
        return idByName.containsKey(name);
    }

    int id(String name) {
        Integer id = idByName.get(name);
        if (id == null) {
            throw new IllegalArgumentException("no activation named '" + name + "' in this forward pass");
        }
        return id;
    }

    /** Every activation in the order the pass writes them, the logits last. */
    List<String> names() {
        List<String> names = new ArrayList<>();
        for (Act a : acts) {
            names.add(a.name);
        }
        return names;
    }

    // -------------------------------------------------------------------------------------------------------------
    // the plan

    private int act(String name, int... seqShape) {
        int n = 1;
        for (int d : seqShape) {
            n *= d;
        }
        acts.add(new Act(name, seqShape, n));
        idByName.put(name, acts.size() - 1);
        return acts.size() - 1;
    }

    private int step(Kind kind, int in0, int in1, int p0, int p1, String name, int... seqShape) {
        int out = act(name, seqShape);
        steps.add(new Step(kind, out, in0, in1, p0, p1));
        return out;
    }

    private static final String[] QKV_HOOKS = {"q", "k", "v"}, QKV_PARAMS = {"Q", "K", "V"};

    private void plan(PackedParams p) {
        int D = cfg.dModel(), H = cfg.nHeads(), Dh = cfg.dHead(), HDh = H * Dh;
        int residPre;
        if (options.splitEmbed) {
            int embed = step(Kind.EMBED, -1, -1, p.offset(ParamLayout.W_E), -1, "hook_embed", T, D);
            int pos = step(Kind.POS_EMBED, -1, -1, p.offset(ParamLayout.W_POS), -1, "hook_pos_embed", T, D);
            residPre = step(Kind.RESID_ADD, embed, pos, -1, -1, HookNames.residPre(0), T, D);
        } else {
            residPre = step(Kind.EMBED_SUM, -1, -1, p.offset(ParamLayout.W_E), p.offset(ParamLayout.W_POS),
                    HookNames.residPre(0), T, D);
        }
        int resid = -1;
        for (int l = 0; l < cfg.nLayers(); l++) {
            if (l > 0) {
                residPre = step(Kind.RESID_PRE, resid, -1, -1, -1, HookNames.residPre(l), T, D);
            }
            int attnIn = cfg.layerNorm() ? layerNorm(p, residPre, HookNames.ln1(l), ParamLayout.ln1(l)) : residPre;
            int[] qkv = new int[3];
            for (int j = 0; j < 3; j++) {
                String name = HookNames.attn(l, QKV_HOOKS[j]);
                qkv[j] = options.tables && l == 0
                        ? step(Kind.QKV_FROM_TABLES, -1, -1, j, -1, name, T, H, Dh)
                        : step(Kind.QKV, attnIn, -1, p.offset(ParamLayout.attnWeight(l, QKV_PARAMS[j])),
                                p.offset(ParamLayout.attnBias(l, QKV_PARAMS[j])), name, T, H, Dh);
            }
            int scores = step(Kind.SCORES, qkv[0], qkv[1], -1, -1, HookNames.attn(l, "attn_scores"), H, T, T);
            int pattern = step(Kind.PATTERN, scores, -1, -1, -1, HookNames.attn(l, "pattern"), H, T, T);
            int z = step(Kind.Z, pattern, qkv[2], -1, -1, HookNames.attn(l, "z"), T, H, Dh);
            int wO = p.offset(ParamLayout.attnWeight(l, "O")), bO = p.offset(ParamLayout.attnBias(l, "O"));
            int attnOut;
            if (options.perHeadResult) {
                int result = step(Kind.RESULT, z, -1, wO, -1, HookNames.attn(l, "result"), T, H, D);
                attnOut = step(Kind.ATTN_OUT_FROM_RESULT, result, -1, -1, bO, HookNames.attnOut(l), T, D);
            } else {
                attnOut = step(Kind.ATTN_OUT, z, -1, wO, bO, HookNames.attnOut(l), T, D);
            }
            if (cfg.attnOnly()) {
                resid = step(Kind.RESID_ADD, residPre, attnOut, -1, -1, HookNames.residPost(l), T, D);
                continue;
            }
            int residMid = step(Kind.RESID_ADD, residPre, attnOut, -1, -1, HookNames.residMid(l), T, D);
            int mlpIn = cfg.layerNorm() ? layerNorm(p, residMid, HookNames.ln2(l), ParamLayout.ln2(l)) : residMid;
            int pre = step(Kind.MLP_PRE, mlpIn, -1, p.offset(ParamLayout.mlp(l, "W_in")),
                    p.offset(ParamLayout.mlp(l, "b_in")), HookNames.mlp(l, "pre"), T, Mp);
            int post = step(Kind.MLP_POST, pre, -1, -1, -1, HookNames.mlp(l, "post"), T, Mp);
            int mlpOut = step(Kind.MLP_OUT, post, -1, p.offset(ParamLayout.mlp(l, "W_out")),
                    p.offset(ParamLayout.mlp(l, "b_out")), HookNames.mlpOut(l), T, D);
            resid = step(Kind.RESID_ADD, residMid, mlpOut, -1, -1, HookNames.residPost(l), T, D);
        }
        int unembedIn = cfg.layerNorm() ? layerNorm(p, resid, HookNames.LN_FINAL, ParamLayout.LN_FINAL) : resid;
        step(Kind.LOGITS, unembedIn, -1, p.offset(ParamLayout.W_U), p.offset(ParamLayout.B_U), HookNames.LOGITS, T, Vp);
    }

    /** The two steps of a LayerNorm (hook_scale, then hook_normalized); returns the normalized activation. */
    private int layerNorm(PackedParams p, int in, String hookPrefix, String paramPrefix) {
        int scale = step(Kind.LN_SCALE, in, -1, -1, -1, hookPrefix + ".hook_scale", T, 1);
        return step(Kind.LN_NORMALIZED, in, scale, p.offset(paramPrefix + ".w"), p.offset(paramPrefix + ".b"),
                hookPrefix + ".hook_normalized", T, cfg.dModel());
    }

    // -------------------------------------------------------------------------------------------------------------
    // running it

    /**
     * Where a sequence's activations live: batch-wide arrays (what the cache keeps and hooks see, at b * perSeq) or
     * this worker's scratch for one sequence.
     */
    static final class Frame {
        private final float[][] batch;
        private final float[][] scratch;
        private final int[] perSeq;

        /** batch[i] non-null: activation i is kept for the whole batch; the others get a scratch buffer here. */
        Frame(Forward fwd, float[][] batch) {
            int n = fwd.acts.size();
            this.batch = batch;
            this.scratch = new float[n][];
            this.perSeq = new int[n];
            for (int i = 0; i < n; i++) {
                perSeq[i] = fwd.acts.get(i).perSeq;
                if (batch[i] == null) {
                    scratch[i] = new float[perSeq[i]];
                }
            }
        }

        /** Every activation in scratch: one sequence at a time, as training runs. */
        Frame(Forward fwd) {
            this(fwd, new float[fwd.acts.size()][]);
        }

        float[] array(int id) {
            return batch[id] != null ? batch[id] : scratch[id];
        }

        int offset(int id, int b) {
            return batch[id] != null ? b * perSeq[id] : 0;
        }
    }

    /** Runs every step for sequence b, whose tokens start at tokens[tokOff]. */
    void run(Frame f, int b, int[] tokens, int tokOff) {
        run(steps, f, b, tokens, tokOff);
    }

    /**
     * Runs these steps (a run of consecutive ones, e.g. a segment between hooks) for sequence b. A layer's Q, K and V
     * steps, when all three are among them, run as one kernel call: they read the same input, which the kernel can
     * then load once for the three (see {@link TensorOps#matmulForward3}); so do a LayerNorm's two steps when no hook
     * on hook_scale comes between them (its mean is summed once). The numbers are the same.
     */
    void run(List<Step> some, Frame f, int b, int[] tokens, int tokOff) {
        int n = some.size();
        for (int i = 0; i < n; i++) {
            Step s = some.get(i);
            if (s.kind == Kind.LN_SCALE && i + 1 < n && some.get(i + 1).kind == Kind.LN_NORMALIZED
                    && some.get(i + 1).in0 == s.in0 && some.get(i + 1).in1 == s.out) {
                runLayerNorm(s, some.get(i + 1), f, b);
                i += 1;
            } else if (s.kind == Kind.QKV && i + 2 < n && some.get(i + 1).kind == Kind.QKV
                    && some.get(i + 2).kind == Kind.QKV && some.get(i + 1).in0 == s.in0
                    && some.get(i + 2).in0 == s.in0) {
                runQkv(s, some.get(i + 1), some.get(i + 2), f, b);
                i += 2;
            } else {
                run(s, f, b, tokens, tokOff);
            }
        }
    }

    private void runLayerNorm(Step scale, Step normalized, Frame f, int b) {
        ops.layerNormForward(f.array(normalized.out), f.offset(normalized.out, b), f.array(scale.out),
                f.offset(scale.out, b), f.array(scale.in0), f.offset(scale.in0, b), w, normalized.p0, w, normalized.p1,
                T, cfg.dModel());
    }

    private void runQkv(Step q, Step k, Step v, Frame f, int b) {
        int HDh = cfg.nHeads() * cfg.dHead();
        ops.matmulForward3(f.array(q.out), f.offset(q.out, b), f.array(k.out), f.offset(k.out, b), f.array(v.out),
                f.offset(v.out, b), f.array(q.in0), f.offset(q.in0, b), w, q.p0, k.p0, v.p0, w, q.p1, k.p1, v.p1, T,
                cfg.dModel(), HDh);
    }

    void run(Step s, Frame f, int b, int[] tokens, int tokOff) {
        int D = cfg.dModel(), H = cfg.nHeads(), Dh = cfg.dHead(), HDh = H * Dh, M = cfg.dMlp();
        float[] out = f.array(s.out);
        int o = f.offset(s.out, b);
        float[] x0 = s.in0 < 0 ? null : f.array(s.in0);
        int o0 = s.in0 < 0 ? 0 : f.offset(s.in0, b);
        float[] x1 = s.in1 < 0 ? null : f.array(s.in1);
        int o1 = s.in1 < 0 ? 0 : f.offset(s.in1, b);
        boolean keyMajor = options.keyMajor;
        switch (s.kind) {
            case EMBED -> {
                for (int t = 0; t < T; t++) {
                    System.arraycopy(w, s.p0 + tokens[tokOff + t] * D, out, o + t * D, D);
                }
            }
            case POS_EMBED -> System.arraycopy(w, s.p0, out, o, T * D);
            case EMBED_SUM -> ops.gatherRowsAdd(out, o, w, s.p0, tokens, tokOff, w, s.p1, T, D);
            case RESID_PRE -> System.arraycopy(x0, o0, out, o, T * D);
            case LN_SCALE -> ops.layerNormScale(out, o, x0, o0, T, D);
            case LN_NORMALIZED -> ops.layerNormApply(out, o, x1, o1, x0, o0, w, s.p0, w, s.p1, T, D);
            case QKV -> ops.matmulForward(out, o, x0, o0, w, s.p0, w, s.p1, T, D, HDh);
            case QKV_FROM_TABLES -> ops.gatherRowsAdd(out, o, tableByToken, s.p0 * cfg.dVocab() * HDh, tokens, tokOff,
                    tableByPos, s.p0 * cfg.nCtx() * HDh, T, HDh);
            case SCORES -> {
                if (keyMajor) {
                    ops.attnScoresForwardKeyMajor(out, o, x0, o0, x1, o1, T, H, Dh);
                } else {
                    ops.attnScoresForward(out, o, x0, o0, x1, o1, T, H, Dh);
                }
            }
            case PATTERN -> {
                if (keyMajor) {
                    ops.softmaxForwardKeyMajor(out, o, x0, o0, T, H);
                } else {
                    ops.softmaxForward(out, o, x0, o0, T, H);
                }
            }
            case Z -> {
                if (keyMajor) {
                    ops.attnValuesForwardKeyMajor(out, o, x0, o0, x1, o1, T, H, Dh);
                } else {
                    ops.attnValuesForward(out, o, x0, o0, x1, o1, T, H, Dh);
                }
            }
            case RESULT -> {
                if (H == 1) {
                    // one head: result [T, 1, D] is z [T, Dh] @ W_O[0], one matmul over all positions
                    ops.matmulForward(out, o, x0, o0, w, s.p0, null, 0, T, Dh, D);
                    break;
                }
                for (int t = 0; t < T; t++) {
                    for (int h = 0; h < H; h++) {
                        ops.matmulForward(out, o + (t * H + h) * D, x0, o0 + (t * H + h) * Dh, w, s.p0 + h * Dh * D,
                                null, 0, 1, Dh, D);
                    }
                }
            }
            // W_O [H, Dh, D] is already [H*Dh, D] row-major: all heads in one matmul
            case ATTN_OUT -> ops.matmulForward(out, o, x0, o0, w, s.p0, w, s.p1, T, HDh, D);
            case ATTN_OUT_FROM_RESULT -> {
                // b_O plus the heads' outputs, added in head order. A loop here rather than a kernel call per
                // position and head (125,000 calls of 32 floats in a cached pass over the challenge's 2500 sequences)
                for (int t = 0; t < T; t++) {
                    System.arraycopy(w, s.p1, out, o + t * D, D);
                }
                for (int t = 0; t < T; t++) {
                    for (int h = 0; h < H; h++) {
                        int to = o + t * D, from = o0 + (t * H + h) * D;
                        for (int d = 0; d < D; d++) {
                            out[to + d] += x0[from + d];
                        }
                    }
                }
            }
            case RESID_ADD -> ops.addForward(out, o, x0, o0, x1, o1, T * D);
            case MLP_PRE -> ops.matmulForward(out, o, x0, o0, w, s.p0, w, s.p1, T, D, Mp);
            case MLP_POST -> ops.reluForward(out, o, x0, o0, T * Mp);
            // the padding of d_mlp is summed over here: read only the first M of each row
            case MLP_OUT -> ops.matmulForwardStrided(out, o, x0, o0, Mp, w, s.p0, w, s.p1, T, M, D);
            case LOGITS -> ops.matmulForward(out, o, x0, o0, w, s.p0, w, s.p1, T, D, Vp);
            default -> throw new IllegalStateException("unplanned step " + s.kind);
        }
    }
}
