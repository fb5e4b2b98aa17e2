package dev.trilens.interp;

import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.Hook;
import dev.trilens.model.HookNames;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Tensor;
import dev.trilens.model.Weights;
import dev.trilens.train.EvalMetrics;
import dev.trilens.train.Metrics;
import dev.trilens.model.ParamLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Analysis 5b: zero- and mean-ablation of each MLP, each attention head and the positional embedding, with the
 * challenge's metrics of each ablated model next to the clean model's.
 *
 * <p><b>Targets.</b> {@code Ll.mlp_out}: blocks.l.hook_mlp_out (the whole MLP output, b_out included);
 * {@code LlHh}: head h's slice of blocks.l.attn.hook_z (so b_O stays, as when TransformerLens users ablate z);
 * {@code pos_embed}: hook_pos_embed.
 *
 * <p><b>Modes.</b> {@code zero}: the activation is set to 0. {@code mean}: it is set to its mean over the whole
 * evaluation batch, over sequences <i>and</i> positions (one vector per target). {@code mean_per_position} (API
 * only): its mean over sequences, separately for each position. Means always come from the clean model on the
 * evaluation batch, and the same replacement is used for the all-trigrams batch (its 3 positions take positions 0..2
 * of a per-position mean).
 *
 * <p><b>Metrics</b> (the JSON keys of {@link EvalMetrics}): loss and loss_as_frac on the evaluation batch (train_loss
 * style: positions 0..T-2 predicting 1..T-1), the correct-token probability stats, and trigram_n_correct /
 * trigram_frac_correct / trigram_avg_correct_prob on the batch of all trigrams, run with the same hook.
 *
 * <p>JSON keys: {@code mean_over} (what the mean mode averages over), {@code clean} (metrics; a value that is
 * undefined, e.g. the trigram metrics of a dataset without trigrams, is null), {@code ablations}
 * (list of {@link Ablated}), {@code summary} (list of sentences).
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public record Ablation(String meanOver, Map<String, Object> clean, List<Ablated> ablations, List<String> summary) {

    public static final String MEAN_OVER = "mean ablation replaces the activation by its mean over every sequence "
            + "and position of the clean model's evaluation batch";

    /** How an activation is replaced. */
    public enum Mode {
        ZERO("zero"), MEAN("mean"), MEAN_PER_POSITION("mean_per_position");

        public final String key;

        Mode(String key) {
            this.key = key;
        }
    }

    /**
     * What to ablate: a hook point of shape [B, T, ...], and for hooks with a head axis ([B, T, H, ...]) the head,
     * else -1.
     */
    public record Target(String name, String hook, int head) {
    }

    /**
     * One ablated model. JSON keys: {@code target}, {@code hook}, {@code head} (-1: the whole activation),
     * {@code mode}, {@code metrics} (as {@code clean}), {@code loss_delta} and {@code trigram_frac_correct_delta}
     * (ablated minus clean).
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Ablated(String target, String hook, int head, String mode, Map<String, Object> metrics,
                          double lossDelta, double trigramFracCorrectDelta) {
    }

    /** Every MLP, every head, the positional embedding; in zero and mean mode. */
    public static Ablation compute(AnalysisContext ctx) {
        return compute(ctx, targets(ctx.model().config()), List.of(Mode.ZERO, Mode.MEAN));
    }

    public static Ablation compute(AnalysisContext ctx, List<Target> targets, List<Mode> modes) {
        TrigramDataset data = Predictions.requireData(ctx, "the ablations");
        HookedTransformer model = ctx.model();
        boolean needMeans = modes.stream().anyMatch(m -> m != Mode.ZERO);
        Map<String, float[][]> means = needMeans ? means(model, data, targets) : Map.of();
        EvalMetrics clean = evaluate(model, data, List.of());
        List<Ablated> out = new ArrayList<>();
        List<String> summary = new ArrayList<>();
        summary.add(String.format("clean: loss %.4f (as frac %.4f), trigrams %d/%d correct, avg prob %.4f",
                clean.loss(), clean.lossAsFrac(), clean.trigramNCorrect(), clean.nTrigrams(),
                clean.trigramAvgCorrectProb()));
        for (Target t : targets) {
            for (Mode m : modes) {
                EvalMetrics e = evaluate(model, data, t, m, means.get(t.hook()));
                out.add(new Ablated(t.name(), t.hook(), t.head(), m.key, json(e), e.loss() - clean.loss(),
                        e.trigramFracCorrect() - clean.trigramFracCorrect()));
                summary.add(String.format("%s-ablating %s: loss %.4f -> %.4f (as frac %.4f -> %.4f), trigrams "
                                + "%d -> %d of %d, avg prob %.4f -> %.4f", m.key, t.name(), clean.loss(), e.loss(),
                        clean.lossAsFrac(), e.lossAsFrac(), clean.trigramNCorrect(), e.trigramNCorrect(),
                        e.nTrigrams(), clean.trigramAvgCorrectProb(), e.trigramAvgCorrectProb()));
            }
        }
        return new Ablation(MEAN_OVER, json(clean), out, summary);
    }

    /**
     * The metrics of the model with target ablated. Where the ablation is a constant replacement the weights can
     * express exactly (zero or mean mode on hook_z, hook_mlp_out or hook_pos_embed) the model is run with those
     * weights instead of the hook, which is several times faster (a hooked pass keeps every activation of the
     * batch); the numbers agree with the hook's up to float rounding (tested). Otherwise the hook is used.
     */
    public static EvalMetrics evaluate(HookedTransformer model, TrigramDataset data, Target target, Mode mode,
                                       float[][] mean) {
        Weights edited = ablatedWeights(model.weights(), target, mode, mean);
        if (edited != null) {
            return evaluate(new HookedTransformer(edited), data, List.of());
        }
        return evaluate(model, data, List.of(hook(target, mode, mean, model.config())));
    }

    /**
     * The weights of the ablated model, or null when the ablation is not a constant the weights can express:
     * hook_mlp_out := c is W_out = 0, b_out = c; head h's hook_z := c is W_O[h] = 0, b_O += c @ W_O[h];
     * hook_pos_embed := c is every row of W_pos = c.
     */
    static Weights ablatedWeights(Weights w, Target target, Mode mode, float[][] mean) {
        if (mode == Mode.MEAN_PER_POSITION) {
            return null;
        }
        if (mode == Mode.MEAN && mean == null) {
            throw new IllegalArgumentException("mode mean needs the mean of " + target.hook());
        }
        float[] c = mode == Mode.MEAN ? columnMean(mean) : null;
        ModelConfig cfg = w.cfg;
        String hook = target.hook();
        Weights e = w.copy();
        float[] d = e.data;
        if (hook.equals("hook_pos_embed")) {
            int off = e.offset(ParamLayout.W_POS), D = cfg.dModel();
            for (int t = 0; t < cfg.nCtx(); t++) {
                for (int i = 0; i < D; i++) {
                    d[off + t * D + i] = c == null ? 0f : c[i];
                }
            }
            return e;
        }
        for (int l = 0; l < cfg.nLayers(); l++) {
            if (!cfg.attnOnly() && hook.equals(HookNames.full("mlp_out", l)) && target.head() < 0) {
                int wOut = e.offset(ParamLayout.mlp(l, "W_out")), bOut = e.offset(ParamLayout.mlp(l, "b_out"));
                Arrays.fill(d, wOut, wOut + cfg.dMlp() * cfg.dModel(), 0f);
                for (int i = 0; i < cfg.dModel(); i++) {
                    d[bOut + i] = c == null ? 0f : c[i];
                }
                return e;
            }
            if (hook.equals(HookNames.full("z", l))) {
                int H = cfg.nHeads(), Dh = cfg.dHead(), D = cfg.dModel();
                int wO = e.offset(ParamLayout.attnWeight(l, "O")), bO = e.offset(ParamLayout.attnBias(l, "O"));
                for (int h = 0; h < H; h++) {
                    if (target.head() >= 0 && h != target.head()) {
                        continue;
                    }
                    for (int i = 0; i < D; i++) {
                        double add = 0;
                        for (int k = 0; k < Dh; k++) {
                            add += c == null ? 0 : (double) c[h * Dh + k] * d[wO + (h * Dh + k) * D + i];
                        }
                        d[bO + i] += (float) add;
                    }
                    Arrays.fill(d, wO + h * Dh * D, wO + (h + 1) * Dh * D, 0f);
                }
                return e;
            }
        }
        return null;
    }

    /** EvalMetrics's JSON with NaN (no trigrams to score) as null, so the JSON stays standard. */
    private static Map<String, Object> json(EvalMetrics m) {
        Map<String, Object> out = dev.trilens.io.JsonFields.of(m);
        out.replaceAll((k, v) -> v instanceof Double d && d.isNaN() ? null : v);
        return out;
    }

    /** The default targets: per layer each head (hook_z) and the MLP (hook_mlp_out), then hook_pos_embed. */
    public static List<Target> targets(ModelConfig cfg) {
        List<Target> t = new ArrayList<>();
        for (int l = 0; l < cfg.nLayers(); l++) {
            for (int h = 0; h < cfg.nHeads(); h++) {
                t.add(new Target("L" + l + "H" + h, HookNames.full("z", l), h));
            }
            if (!cfg.attnOnly()) {
                t.add(new Target("L" + l + ".mlp_out", HookNames.full("mlp_out", l), -1));
            }
        }
        t.add(new Target("pos_embed", "hook_pos_embed", -1));
        return t;
    }

    /**
     * The hook that ablates target in the given mode. mean is [T][width] (per position) from {@link #means}; ignored
     * in zero mode. Works for any batch size and any T up to the mean's.
     */
    public static Hook.At hook(Target target, Mode mode, float[][] mean, ModelConfig cfg) {
        if (mode != Mode.ZERO && mean == null) {
            throw new IllegalArgumentException("mode " + mode.key + " needs the mean of " + target.hook());
        }
        float[] overall = mode == Mode.MEAN ? columnMean(mean) : null;
        return Hook.at(target.hook(), (act, name) -> {
            int B = act.dim(0), T = act.dim(1);
            int perPos = act.stride0() / T;
            int from = 0, width = perPos;
            if (target.head() >= 0) {
                int H = act.dim(2);
                if (target.head() >= H) {
                    throw new TrilensException(name + " has " + H + " heads, no head " + target.head());
                }
                width = perPos / H;
                from = target.head() * width;
            }
            float[] d = act.data();
            for (int b = 0; b < B; b++) {
                for (int t = 0; t < T; t++) {
                    int off = (b * T + t) * perPos;
                    switch (mode) {
                        case ZERO -> Arrays.fill(d, off + from, off + from + width, 0f);
                        case MEAN -> System.arraycopy(overall, from, d, off + from, width);
                        case MEAN_PER_POSITION -> System.arraycopy(mean[t], from, d, off + from, width);
                        default -> throw new IllegalStateException();
                    }
                }
            }
        });
    }

    /** Per-position means over the batch of each target's hook on the clean model: hook -> [T][per-position size]. */
    public static Map<String, float[][]> means(HookedTransformer model, TrigramDataset data, List<Target> targets) {
        Set<String> hooks = new HashSet<>();
        for (Target t : targets) {
            hooks.add(t.hook());
        }
        int B = data.size(), T = data.seqLen();
        HookedTransformer.Run run = model.runWithCache(data.tokens(), B, T, hooks::contains);
        Map<String, float[][]> out = new java.util.HashMap<>();
        for (String h : hooks) {
            Tensor a = run.cache().get(h);
            int perPos = a.stride0() / T;
            double[][] sum = new double[T][perPos];
            float[] d = a.data();
            for (int b = 0; b < B; b++) {
                for (int t = 0; t < T; t++) {
                    int off = (b * T + t) * perPos;
                    for (int i = 0; i < perPos; i++) {
                        sum[t][i] += d[off + i];
                    }
                }
            }
            float[][] m = new float[T][perPos];
            for (int t = 0; t < T; t++) {
                for (int i = 0; i < perPos; i++) {
                    m[t][i] = (float) (sum[t][i] / B);
                }
            }
            out.put(h, m);
        }
        return out;
    }

    private static float[] columnMean(float[][] perPosition) {
        float[] out = new float[perPosition[0].length];
        for (int i = 0; i < out.length; i++) {
            double s = 0;
            for (float[] row : perPosition) {
                s += row[i];
            }
            out[i] = (float) (s / perPosition.length);
        }
        return out;
    }

    /**
     * {@link Metrics#evaluate} for a model run under hooks: the same metrics, with the hooks applied to the
     * evaluation batch and to the all-trigrams batch. With no hooks it equals Metrics.evaluate.
     */
    public static EvalMetrics evaluate(HookedTransformer model, TrigramDataset data, List<Hook.At> hooks) {
        Tensor logits = model.runWithHooks(data.tokens(), data.size(), data.seqLen(), hooks);
        int n = data.nTrigrams();
        Metrics.TrigramScore tri = n == 0 ? new Metrics.TrigramScore(0, Double.NaN, Double.NaN)
                : Metrics.trigramScore(model.runWithHooks(data.trigramBatch(), n, 3, hooks), data);
        return Metrics.evaluate(logits, data, tri);
    }
}
