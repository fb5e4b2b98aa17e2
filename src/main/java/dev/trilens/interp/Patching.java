package dev.trilens.interp;

import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import com.fasterxml.jackson.databind.annotation.JsonSerialize;
import dev.trilens.TrilensException;
import dev.trilens.model.ActivationCache;
import dev.trilens.model.Hook;
import dev.trilens.model.HookNames;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Logits;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.ToDoubleFunction;

/**
 * Analysis 6: activation patching, TransformerLens style, and the attention-swap experiment.
 *
 * <p>{@link #patch} runs the clean tokens with hooks that overwrite chosen parts of chosen activations with the
 * corrupted run's: a whole hook, some positions, one head, or both. Positions index the sequence axis of [B, T, ...]
 * hooks and the <i>query</i> axis of hook_attn_scores / hook_pattern [B, H, T, T]; heads index the head axis of
 * hook_q/k/v/z/result ([B, T, H, ...]) and of the scores and pattern. Patching every hook point's corrupted value in,
 * or just hook_embed and hook_pos_embed, reproduces the corrupted run; patching the clean run into itself changes
 * nothing.
 *
 * <p>{@link #attentionSwap} moves one query position's attention entirely onto another position and reports the
 * prediction there before and after.
 */
public final class Patching {
    private Patching() {
    }

    /**
     * One part of one hook to take from the corrupted run.
     *
     * @param positions sequence (or query) positions to patch; null for all
     * @param head the head to patch, or -1 for all heads (and for hooks without a head axis)
     */
    public record Patch(String hook, int[] positions, int head) {
        /** The whole activation. */
        public static Patch all(String hook) {
            return new Patch(hook, null, -1);
        }

        /** These positions (query positions for scores and pattern), all heads. */
        public static Patch at(String hook, int... positions) {
            return new Patch(hook, positions.clone(), -1);
        }

        public Patch withHead(int h) {
            return new Patch(hook, positions, h);
        }
    }

    /** Clean tokens [B, T] run with the patches taken from a run of corrupted tokens [B, T]; returns the logits. */
    public static Tensor patch(HookedTransformer model, int[] clean, int[] corrupted, int B, int T,
                               List<Patch> patches) {
        Set<String> names = new HashSet<>();
        for (Patch p : patches) {
            names.add(p.hook());
        }
        checkHooks(model, names);
        ActivationCache cache = model.runWithCache(corrupted, B, T, names::contains).cache();
        return patch(model, clean, cache, B, T, patches);
    }

    /** As above, with the corrupted activations already cached (they must be [B, T] runs like clean). */
    public static Tensor patch(HookedTransformer model, int[] clean, ActivationCache corrupted, int B, int T,
                               List<Patch> patches) {
        List<Hook.At> hooks = new ArrayList<>();
        ModelConfig cfg = model.config();
        Set<String> names = new HashSet<>();
        for (Patch p : patches) {
            names.add(p.hook());
        }
        checkHooks(model, names);
        for (Patch p : patches) {
            Tensor src = corrupted.get(p.hook());
            boolean qk = isPatternLike(p.hook());
            boolean headed = qk || hasHeadAxis(p.hook());
            if (p.head() >= 0 && !headed) {
                throw new TrilensException(p.hook() + " has no head axis; patch it without a head");
            }
            if (p.head() >= cfg.nHeads() || p.head() < -1) {
                throw new TrilensException("head " + p.head() + " out of range; the model has " + cfg.nHeads()
                        + " heads (0.." + (cfg.nHeads() - 1) + ")");
            }
            int[] pos = p.positions() == null ? range(T) : p.positions();
            for (int t : pos) {
                if (t < 0 || t >= T) {
                    throw new TrilensException("position " + t + " out of range; sequences have " + T
                            + " positions (0.." + (T - 1) + ")");
                }
            }
            hooks.add(Hook.at(p.hook(), (act, name) -> {
                if (!Arrays.equals(act.shape(), src.shape())) {
                    throw new TrilensException("cannot patch " + name + ": the corrupted activation is "
                            + src.shapeString() + ", the clean one " + act.shapeString());
                }
                copy(src.data(), act.data(), act.shape(), qk, p.head(), pos);
            }));
        }
        return model.runWithHooks(clean, B, T, hooks);
    }

    /** A metric of the patched logits (e.g. a logit difference). */
    public static double patchMetric(HookedTransformer model, int[] clean, int[] corrupted, int B, int T,
                                     List<Patch> patches, ToDoubleFunction<Tensor> metric) {
        return metric.applyAsDouble(patch(model, clean, corrupted, B, T, patches));
    }

    /**
     * TransformerLens's get_act_patch_* sweep: the metric after patching one (position, head) of hook at a time,
     * [T][H] for hooks with a head axis, [T][1] otherwise.
     */
    public static double[][] sweep(HookedTransformer model, int[] clean, int[] corrupted, int B, int T, String hook,
                                   ToDoubleFunction<Tensor> metric) {
        checkHooks(model, Set.of(hook));
        ActivationCache cache = model.runWithCache(corrupted, B, T, hook::equals).cache();
        boolean headed = isPatternLike(hook) || hasHeadAxis(hook);
        int nh = headed ? model.config().nHeads() : 1;
        double[][] out = new double[T][nh];
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < nh; h++) {
                Patch p = new Patch(hook, new int[] {t}, headed ? h : -1);
                out[t][h] = metric.applyAsDouble(patch(model, clean, cache, B, T, List.of(p)));
            }
        }
        return out;
    }

    private static void copy(float[] src, float[] dst, int[] shape, boolean qk, int head, int[] positions) {
        int B = shape[0];
        if (qk) { // [B, H, T, T], positions are queries
            int H = shape[1], T = shape[2];
            for (int b = 0; b < B; b++) {
                for (int h = 0; h < H; h++) {
                    if (head >= 0 && h != head) {
                        continue;
                    }
                    for (int q : positions) {
                        int off = ((b * H + h) * T + q) * T;
                        System.arraycopy(src, off, dst, off, T);
                    }
                }
            }
            return;
        }
        int T = shape[1];
        int perPos = dst.length / (B * T);
        int from = 0, width = perPos;
        if (head >= 0) { // [B, T, H, ...]
            width = perPos / shape[2];
            from = head * width;
        }
        for (int b = 0; b < B; b++) {
            for (int t : positions) {
                int off = (b * T + t) * perPos + from;
                System.arraycopy(src, off, dst, off, width);
            }
        }
    }

    static boolean isPatternLike(String hook) {
        return hook.endsWith("attn.hook_pattern") || hook.endsWith("attn.hook_attn_scores");
    }

    static boolean hasHeadAxis(String hook) {
        return hook.endsWith("attn.hook_q") || hook.endsWith("attn.hook_k") || hook.endsWith("attn.hook_v")
                || hook.endsWith("attn.hook_z") || hook.endsWith("attn.hook_result");
    }

    private static void checkHooks(HookedTransformer model, Set<String> names) {
        List<String> all = model.hookNames();
        for (String n : names) {
            if (!all.contains(n)) {
                throw new TrilensException("no hook point named '" + n + "'; this model's hook points are " + all);
            }
        }
    }

    private static int[] range(int n) {
        int[] r = new int[n];
        for (int i = 0; i < n; i++) {
            r[i] = i;
        }
        return r;
    }

    // -------------------------------------------------------------------------------------------------------------
    // The attention swap

    /** How many of the top tokens a swap lists before and after. */
    public static final int TOP_K = 5;

    /**
     * A token the model predicts at the query position. JSON keys: {@code token}, {@code prob}, {@code rank}
     * (1 = the model's top prediction).
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Prediction(int token, double prob, int rank) {
    }

    /**
     * The attention swap's result, at the query position P.
     *
     * <p>JSON keys: {@code tokens} (the sequence), {@code query_pos}, {@code new_key_pos}, {@code layer} and
     * {@code head} (-1: every layer / every head), {@code query_token} (tokens[P]), {@code new_key_token}
     * (tokens[Q]), {@code previous_token} (tokens[P-1], -1 at P = 0), {@code next_token} (tokens[P+1], -1 at the last
     * position), {@code attention_to_new_key_before}, {@code attention_to_previous_before} and
     * {@code attention_to_self_before} ([layer][head] of the clean pattern at row P: on Q, on P-1 (0 at P = 0), on P), {@code top_before}, {@code top_after} (the {@value TOP_K} most likely tokens),
     * {@code before} (top-1 before), {@code after} (top-1 after), {@code before_top_after} (the token that was top-1
     * before, after the swap: its probability and rank), {@code after_top_before} (the new top-1 as it was before),
     * {@code next_token_before} / {@code next_token_after} (the actual next token, null at the last position),
     * {@code prediction_changed}, {@code summary}.
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record SwapResult(int[] tokens, int queryPos, int newKeyPos, int layer, int head, int queryToken,
                             int newKeyToken, int previousToken, int nextToken, double[][] attentionToNewKeyBefore,
                             double[][] attentionToPreviousBefore, double[][] attentionToSelfBefore, List<Prediction> topBefore,
                             List<Prediction> topAfter, Prediction before, Prediction after,
                             Prediction beforeTopAfter, Prediction afterTopBefore, Prediction nextTokenBefore,
                             Prediction nextTokenAfter, boolean predictionChanged,
                             @JsonSerialize(using = OneSentenceList.class) String summary) {
    }

    /** Moves position P's attention onto Q in every head of every layer. */
    public static SwapResult attentionSwap(HookedTransformer model, int[] tokens, int queryPos, int newKeyPos) {
        return attentionSwap(model, tokens, queryPos, newKeyPos, -1, -1);
    }

    /**
     * Runs one sequence, then runs it again with row P of hook_pattern set to one-hot at Q (in the given layer and
     * head, -1 for all), and compares the predictions at P.
     */
    public static SwapResult attentionSwap(HookedTransformer model, int[] tokens, int queryPos, int newKeyPos,
                                           int layer, int head) {
        ModelConfig cfg = model.config();
        int T = tokens.length, P = queryPos, Q = newKeyPos;
        if (T < 1 || T > cfg.nCtx()) {
            throw new TrilensException("the sequence has " + T + " tokens; expected 1.." + cfg.nCtx());
        }
        if (P < 0 || P >= T) {
            throw new TrilensException("query position " + P + " out of range; expected 0.." + (T - 1));
        }
        if (Q < 0 || Q > P) {
            throw new TrilensException("position " + P + " can only attend positions 0.." + P + " (causal mask), got "
                    + Q);
        }
        if (layer < -1 || layer >= cfg.nLayers()) {
            throw new TrilensException("layer " + layer + " out of range; the model has " + cfg.nLayers()
                    + " layer(s) (0.." + (cfg.nLayers() - 1) + ")");
        }
        if (head < -1 || head >= cfg.nHeads()) {
            throw new TrilensException("head " + head + " out of range; the model has " + cfg.nHeads()
                    + " head(s) (0.." + (cfg.nHeads() - 1) + ")");
        }
        int L = cfg.nLayers(), H = cfg.nHeads(), V = cfg.dVocab();
        HookedTransformer.Run clean = model.runWithCache(tokens, 1, T, n -> n.endsWith("attn.hook_pattern"));
        double[][] onKey = new double[L][H], onPrev = new double[L][H], onSelf = new double[L][H];
        for (int l = 0; l < L; l++) {
            Tensor pat = clean.cache().get(HookNames.full("pattern", l));
            for (int h = 0; h < H; h++) {
                onKey[l][h] = pat.get(0, h, P, Q);
                onPrev[l][h] = P > 0 ? pat.get(0, h, P, P - 1) : 0;
                onSelf[l][h] = pat.get(0, h, P, P);
            }
        }
        List<Hook.At> hooks = new ArrayList<>();
        for (int l = 0; l < L; l++) {
            if (layer >= 0 && l != layer) {
                continue;
            }
            hooks.add(Hook.at(HookNames.full("pattern", l), (act, name) -> {
                for (int h = 0; h < H; h++) {
                    if (head >= 0 && h != head) {
                        continue;
                    }
                    int row = act.index(0, h, P, 0);
                    Arrays.fill(act.data(), row, row + T, 0f);
                    act.data()[row + Q] = 1f;
                }
            }));
        }
        Tensor after = model.runWithHooks(tokens, 1, T, hooks);
        double[] pb = probs(clean.logits().data(), P * V, V), pa = probs(after.data(), P * V, V);
        int[] rb = ranks(pb), ra = ranks(pa);
        int topB = argmaxOf(clean.logits().data(), P * V, V), topA = argmaxOf(after.data(), P * V, V);
        int next = P + 1 < T ? tokens[P + 1] : -1;
        Prediction before = new Prediction(topB, pb[topB], 1), afterTop = new Prediction(topA, pa[topA], 1);
        Prediction bAfter = new Prediction(topB, pa[topB], ra[topB]);
        Prediction aBefore = new Prediction(topA, pb[topA], rb[topA]);
        Prediction nB = next < 0 ? null : new Prediction(next, pb[next], rb[next]);
        Prediction nA = next < 0 ? null : new Prediction(next, pa[next], ra[next]);
        String where = (layer < 0 ? (L == 1 ? "" : "every layer, ") : "layer " + layer + ", ")
                + (head < 0 ? (H == 1 ? "the head" : "every head") : "head " + head);
        String summary = String.format("moving position %d's attention (token %d) onto position %d (token %d) in %s: "
                        + "top-1 %d (p=%.3f) -> %d (p=%.3f); token %d now p=%.3f, rank %d", P, tokens[P], Q, tokens[Q],
                where, topB, pb[topB], topA, pa[topA], topB, pa[topB], ra[topB]);
        return new SwapResult(tokens.clone(), P, Q, layer, head, tokens[P], tokens[Q], P > 0 ? tokens[P - 1] : -1,
                next, onKey, onPrev, onSelf, top(pb, rb), top(pa, ra), before, afterTop, bAfter, aBefore, nB, nA,
                topA != topB, summary);
    }

    private static int argmaxOf(float[] logits, int off, int V) {
        return Logits.argmax(logits, off, V);
    }

    private static double[] probs(float[] logits, int off, int V) {
        double[] p = new double[V];
        for (int v = 0; v < V; v++) {
            p[v] = Math.exp(Logits.logProb(logits, off, V, v));
        }
        return p;
    }

    /** 1-based rank of each token by probability (ties broken by token id, as argmax breaks them). */
    private static int[] ranks(double[] p) {
        Integer[] order = new Integer[p.length];
        for (int i = 0; i < p.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> p[a] != p[b] ? Double.compare(p[b], p[a]) : Integer.compare(a, b));
        int[] rank = new int[p.length];
        for (int r = 0; r < order.length; r++) {
            rank[order[r]] = r + 1;
        }
        return rank;
    }

    private static List<Prediction> top(double[] p, int[] rank) {
        Prediction[] out = new Prediction[Math.min(TOP_K, p.length)];
        for (int v = 0; v < p.length; v++) {
            if (rank[v] <= out.length) {
                out[rank[v] - 1] = new Prediction(v, p[v], rank[v]);
            }
        }
        return List.of(out);
    }
}
