package dev.trilens.interp;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Logits;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.ParamLayout;
import dev.trilens.model.Tensor;
import dev.trilens.model.Weights;
import java.util.ArrayList;
import java.util.List;

/**
 * Analysis 7: TransformerLens's weight processing ({@code process_weights_}) as pure functions on {@link Weights},
 * each returning new weights and a {@link Step} saying whether it was applied and why (not), in TransformerLens's
 * order: {@link #foldLn}, {@link #centerWritingWeights}, {@link #centerUnembed}, {@link #foldValueBiases}. Each
 * leaves the model's log-probabilities unchanged (up to float rounding); {@link #compute} measures that on a batch
 * rather than assuming it.
 *
 * <ul>
 *   <li><b>fold_ln</b> (LayerNorm models): each LayerNorm's w and b are folded into the weights that read its
 *   output: ln1 into W_Q, W_K, W_V and b_Q, b_K, b_V; ln2 into W_in and b_in; ln_final into W_U and b_U
 *   (b += ln.b @ W, then W *= ln.w per input row), and those weights are centred over their d_model (input) axis,
 *   which a LayerNorm's zero-mean output cannot see. TransformerLens then switches the model to LNPre (LayerNorm
 *   without w, b); trilens has no LNPre mode, so the LayerNorms are left in place with w = 1, b = 0, which computes
 *   the same thing.
 *   <li><b>center_writing_weights</b> (LayerNorm models only): the mean over d_model is subtracted from every
 *   vector written into the residual stream: rows of W_E, W_pos, W_O (each head), W_out, and b_O, b_out. Valid
 *   only because every reader of the residual stream starts with a LayerNorm, which subtracts the mean anyway;
 *   without LayerNorm it is skipped.
 *   <li><b>center_unembed</b>: the mean over the vocabulary is subtracted from each row of W_U and from b_U; each
 *   position's logits shift by one constant, so log-probabilities are unchanged.
 *   <li><b>fold_value_biases</b>: b_O += sum_h b_V[h] @ W_O[h], then b_V = 0; valid because every attention pattern
 *   row sums to 1, so the value bias always reaches the output as exactly b_V[h] @ W_O[h].
 * </ul>
 *
 * <p>JSON keys: {@code steps} (list of {@link Step}, in order), {@code applied}, {@code skipped} (step names),
 * {@code max_log_prob_diff} (max |log_softmax(logits) processed - original| over {@code checked_on}),
 * {@code checked_on} (which batch), {@code summary} (list of sentences). The processed weights are available as
 * {@link #weights()} but not serialised.
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public record WeightProcessing(List<Step> steps, List<String> applied, List<String> skipped, double maxLogProbDiff,
                               String checkedOn, List<String> summary, @JsonIgnore Weights weights) {

    /** One processing function's outcome. JSON keys: {@code name}, {@code applied}, {@code reason}. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Step(String name, boolean applied, String reason) {
    }

    /** New weights (the input itself when the step is skipped) and what the step did. */
    public record Result(Weights weights, Step step) {
    }

    public static final String FOLD_LN = "fold_ln";
    public static final String CENTER_WRITING_WEIGHTS = "center_writing_weights";
    public static final String CENTER_UNEMBED = "center_unembed";
    public static final String FOLD_VALUE_BIASES = "fold_value_biases";

    /** All four steps in TransformerLens's order, measured on a batch of the dataset (or random tokens). */
    public static WeightProcessing compute(AnalysisContext ctx) {
        HookedTransformer model = ctx.model();
        ModelConfig cfg = model.config();
        int B, T;
        int[] tokens;
        String checkedOn;
        if (ctx.data() != null && ctx.data().seqLen() <= cfg.nCtx()) {
            B = Math.min(16, ctx.data().size());
            T = ctx.data().seqLen();
            tokens = ctx.data().tokensOf(0, B);
            checkedOn = "the first " + B + " sequences of the evaluation batch";
        } else {
            B = 16;
            T = cfg.nCtx();
            tokens = QkCircuit.randomTokens(cfg, B, 99);
            checkedOn = B + " sequences of " + T + " uniformly random tokens (seed 99)";
        }
        return process(model.weights(), tokens, B, T, checkedOn);
    }

    /** All four steps, with the log-prob check on the given batch. */
    public static WeightProcessing process(Weights w, int[] tokens, int B, int T, String checkedOn) {
        List<Result> results = new ArrayList<>();
        Weights cur = w;
        results.add(foldLn(cur));
        cur = results.get(results.size() - 1).weights();
        results.add(centerWritingWeights(cur));
        cur = results.get(results.size() - 1).weights();
        results.add(centerUnembed(cur));
        cur = results.get(results.size() - 1).weights();
        results.add(foldValueBiases(cur));
        cur = results.get(results.size() - 1).weights();
        List<Step> steps = new ArrayList<>();
        List<String> applied = new ArrayList<>(), skipped = new ArrayList<>(), summary = new ArrayList<>();
        for (Result r : results) {
            steps.add(r.step());
            (r.step().applied() ? applied : skipped).add(r.step().name());
        }
        double diff = maxLogProbDiff(w, cur, tokens, B, T);
        summary.add("weight processing: applied " + (applied.isEmpty() ? "nothing" : String.join(", ", applied))
                + (skipped.isEmpty() ? "" : "; skipped " + String.join(", ", skipped)));
        for (Step s : steps) {
            if (!s.applied()) {
                summary.add("  " + s.name() + " skipped: " + s.reason());
            }
        }
        summary.add(String.format("weight processing: log-probabilities change by at most %.2e on %s", diff,
                checkedOn));
        return new WeightProcessing(steps, applied, skipped, diff, checkedOn, summary, cur);
    }

    /** Max |log_softmax(logits of b) - log_softmax(logits of a)| over a batch. */
    public static double maxLogProbDiff(Weights a, Weights b, int[] tokens, int B, int T) {
        float[] la = logSoftmax(new HookedTransformer(a).forward(tokens, B, T), a.cfg.dVocab());
        float[] lb = logSoftmax(new HookedTransformer(b).forward(tokens, B, T), b.cfg.dVocab());
        double max = 0;
        for (int i = 0; i < la.length; i++) {
            max = Math.max(max, Math.abs((double) la[i] - lb[i]));
        }
        return max;
    }

    static float[] logSoftmax(Tensor logits, int V) {
        float[] out = new float[logits.data().length];
        Logits.logSoftmax(logits.data(), V, out);
        return out;
    }

    // -------------------------------------------------------------------------------------------------------------

    public static Result foldLn(Weights w) {
        ModelConfig cfg = w.cfg;
        if (!cfg.layerNorm()) {
            return skip(w, FOLD_LN, "the model has no LayerNorm (normalization_type None)");
        }
        Weights out = w.copy();
        int D = cfg.dModel(), H = cfg.nHeads(), Dh = cfg.dHead();
        for (int l = 0; l < cfg.nLayers(); l++) {
            for (String x : new String[] {"Q", "K", "V"}) {
                fold(out, ParamLayout.ln1(l), ParamLayout.attnWeight(l, x), ParamLayout.attnBias(l, x), H, D, Dh);
            }
            resetLn(out, ParamLayout.ln1(l));
            if (!cfg.attnOnly()) {
                fold(out, ParamLayout.ln2(l), ParamLayout.mlp(l, "W_in"), ParamLayout.mlp(l, "b_in"), 1, D,
                        cfg.dMlp());
                resetLn(out, ParamLayout.ln2(l));
            }
        }
        fold(out, ParamLayout.LN_FINAL, ParamLayout.W_U, ParamLayout.B_U, 1, D, cfg.dVocab());
        resetLn(out, ParamLayout.LN_FINAL);
        return new Result(out, new Step(FOLD_LN, true, "LayerNorm w, b folded into W_Q/W_K/W_V/b_Q/b_K/b_V (ln1)"
                + (cfg.attnOnly() ? "" : ", W_in/b_in (ln2)") + " and W_U/b_U (ln_final), reading weights centred "
                + "over d_model; LayerNorms left as LNPre (w = 1, b = 0)"));
    }

    /** b += ln.b @ W; W *= ln.w per input row; W centred over its input (d_model) axis; for n stacked [D, cols]. */
    private static void fold(Weights w, String ln, String wName, String bName, int n, int D, int cols) {
        float[] d = w.data;
        int lw = w.offset(ln + ".w"), lb = w.offset(ln + ".b");
        int wo = w.offset(wName), bo = w.offset(bName);
        for (int h = 0; h < n; h++) {
            int base = wo + h * D * cols;
            for (int c = 0; c < cols; c++) {
                double bias = d[bo + h * cols + c];
                double mean = 0;
                for (int i = 0; i < D; i++) {
                    double orig = d[base + i * cols + c];
                    bias += d[lb + i] * orig;
                    mean += d[lw + i] * orig;
                }
                mean /= D;
                for (int i = 0; i < D; i++) {
                    d[base + i * cols + c] = (float) (d[lw + i] * (double) d[base + i * cols + c] - mean);
                }
                d[bo + h * cols + c] = (float) bias;
            }
        }
    }

    private static void resetLn(Weights w, String ln) {
        fill(w, ln + ".w", 1f);
        fill(w, ln + ".b", 0f);
    }

    public static Result centerWritingWeights(Weights w) {
        ModelConfig cfg = w.cfg;
        if (!cfg.layerNorm()) {
            return skip(w, CENTER_WRITING_WEIGHTS, "the model has no LayerNorm, so the mean of the residual stream "
                    + "reaches the attention, MLP and unembed and removing it would change the outputs");
        }
        Weights out = w.copy();
        int D = cfg.dModel();
        centerRows(out, ParamLayout.W_E, D);
        centerRows(out, ParamLayout.W_POS, D);
        for (int l = 0; l < cfg.nLayers(); l++) {
            centerRows(out, ParamLayout.attnWeight(l, "O"), D);
            centerRows(out, ParamLayout.attnBias(l, "O"), D);
            if (!cfg.attnOnly()) {
                centerRows(out, ParamLayout.mlp(l, "W_out"), D);
                centerRows(out, ParamLayout.mlp(l, "b_out"), D);
            }
        }
        return new Result(out, new Step(CENTER_WRITING_WEIGHTS, true, "mean over d_model removed from W_E, W_pos, "
                + "W_O, b_O" + (cfg.attnOnly() ? "" : ", W_out, b_out") + " (every reader starts with a LayerNorm)"));
    }

    public static Result centerUnembed(Weights w) {
        Weights out = w.copy();
        centerRows(out, ParamLayout.W_U, w.cfg.dVocab());
        centerRows(out, ParamLayout.B_U, w.cfg.dVocab());
        return new Result(out, new Step(CENTER_UNEMBED, true, "mean over the vocabulary removed from W_U and b_U "
                + "(logits shift by a constant per position; log-probabilities unchanged)"));
    }

    public static Result foldValueBiases(Weights w) {
        ModelConfig cfg = w.cfg;
        Weights out = w.copy();
        float[] d = out.data;
        int H = cfg.nHeads(), Dh = cfg.dHead(), D = cfg.dModel();
        boolean allZero = true;
        for (int l = 0; l < cfg.nLayers(); l++) {
            int bv = out.offset(ParamLayout.attnBias(l, "V")), wo = out.offset(ParamLayout.attnWeight(l, "O"));
            int bo = out.offset(ParamLayout.attnBias(l, "O"));
            for (int j = 0; j < D; j++) {
                double s = d[bo + j];
                for (int h = 0; h < H; h++) {
                    for (int e = 0; e < Dh; e++) {
                        s += (double) d[bv + h * Dh + e] * d[wo + (h * Dh + e) * D + j];
                    }
                }
                d[bo + j] = (float) s;
            }
            for (int i = 0; i < H * Dh; i++) {
                allZero &= d[bv + i] == 0f;
                d[bv + i] = 0f;
            }
        }
        return new Result(out, new Step(FOLD_VALUE_BIASES, true, allZero
                ? "b_V was already zero; nothing to move into b_O"
                : "b_O += sum_h b_V[h] @ W_O[h], b_V = 0 (attention pattern rows sum to 1)"));
    }

    private static Result skip(Weights w, String name, String reason) {
        return new Result(w, new Step(name, false, reason));
    }

    /** Subtracts from each row (last axis of length n) of a parameter its mean. */
    private static void centerRows(Weights w, String name, int n) {
        ParamLayout.Param p = w.layout.get(name);
        float[] d = w.data;
        for (int r = 0; r < p.size() / n; r++) {
            int o = p.offset() + r * n;
            double mean = 0;
            for (int i = 0; i < n; i++) {
                mean += d[o + i];
            }
            mean /= n;
            for (int i = 0; i < n; i++) {
                d[o + i] = (float) (d[o + i] - mean);
            }
        }
    }

    private static void fill(Weights w, String name, float v) {
        ParamLayout.Param p = w.layout.get(name);
        java.util.Arrays.fill(w.data, p.offset(), p.offset() + p.size(), v);
    }
}
