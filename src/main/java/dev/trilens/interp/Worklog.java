package dev.trilens.interp;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import dev.trilens.train.EvalMetrics;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The questions the challenge's worklog asks, each answered with a verdict computed from the model at hand and the
 * numbers behind it. The worklog's own guesses are quoted in the questions so that a verdict can contradict them.
 */
public final class Worklog {

    /** One answered question; evidence holds the numbers the verdict quotes, unrounded. */
    public record Answer(String id, String question, String verdict, Map<String, Object> evidence, String section) {
    }

    /**
     * What the worklog's answers can use beyond the model and its analysis.
     *
     * @param initial the model's weights before training (for a model trilens trained: its init, redrawn from the
     *                init seed in its metadata), or null
     * @param attnOnly the metrics of an attention-only model on the same dataset, or null
     * @param attnOnlySource where attnOnly came from, for the verdict
     */
    public record Inputs(Weights initial, EvalMetrics attnOnly, String attnOnlySource) {
        public static Inputs none() {
            return new Inputs(null, null, null);
        }
    }

    private Worklog() {
    }

    public static List<Answer> answer(AnalysisContext ctx, JsonNode sections, Inputs in) {
        ModelConfig cfg = ctx.model().config();
        List<Answer> out = new ArrayList<>();
        out.add(layerNorm(cfg, sections));
        out.add(mlpNeeded(cfg, sections, in));
        out.add(setTest(sections));
        out.add(finalPosition(ctx.model().weights(), sections, in.initial()));
        out.add(qkNature(sections));
        return out;
    }

    // 1 ------------------------------------------------------------------------------------------------------------

    static Answer layerNorm(ModelConfig cfg, JsonNode sections) {
        JsonNode wp = sections.at("/circuits/weight_processing");
        List<String> applied = strings(wp.path("applied"));
        Map<String, Object> ev = new LinkedHashMap<>();
        ev.put("layer_norm", cfg.layerNorm());
        ev.put("weight_processing_applied", applied);
        ev.put("weight_processing_skipped", strings(wp.path("skipped")));
        ev.put("max_log_prob_change", wp.path("max_log_prob_diff").asDouble(Double.NaN));
        String processing = applied.isEmpty() ? "No weight processing was applied."
                : String.format(Locale.ROOT, "Weight processing applied %s, which changes the log-probabilities by "
                + "at most %.1e.", String.join(", ", applied), wp.path("max_log_prob_diff").asDouble(Double.NaN));
        String verdict = cfg.layerNorm()
                ? (applied.contains("fold_ln")
                ? "Yes: the model has a LayerNorm before the attention (ln1), and its scale and bias were folded into "
                + "W_Q, W_K and W_V (fold_ln), so the circuits read the folded weights; the normalisation itself "
                + "stays, so they are exact only up to its per-position scale. "
                : "Yes: the model has a LayerNorm before the attention (ln1), but it was not folded. ")
                : "No: the model has no LayerNorm at all (normalization_type None), so there is nothing to fold: Q, K "
                + "and V are read from W_E[token] + W_pos[position] directly and the QK and OV circuits are exact. ";
        return new Answer("layer_norm", "Is there a LayerNorm at the start, and can it be folded into Q/K/V?",
                verdict + processing, ev, "model");
    }

    // 2 ------------------------------------------------------------------------------------------------------------

    static Answer mlpNeeded(ModelConfig cfg, JsonNode sections, Inputs in) {
        JsonNode abl = sections.path("ablation");
        int clean = abl.at("/clean/trigram_n_correct").asInt(sections.at("/metrics/trigram_n_correct").asInt());
        int n = abl.at("/clean/n_trigrams").asInt(sections.at("/metrics/n_trigrams").asInt());
        Map<String, Object> ev = new LinkedHashMap<>();
        ev.put("has_mlp", !cfg.attnOnly());
        ev.put("trigram_n_correct", clean);
        ev.put("n_trigrams", n);
        Integer zero = null, mean = null;
        for (JsonNode a : abl.path("ablations")) {
            if (a.path("target").asText().contains("mlp")) {
                int v = a.at("/metrics/trigram_n_correct").asInt();
                if (a.path("mode").asText().equals("zero")) {
                    zero = v;
                } else {
                    mean = v;
                }
            }
        }
        StringBuilder v = new StringBuilder();
        if (cfg.attnOnly()) {
            v.append(String.format(Locale.ROOT, "This model has no MLP: the head alone gets %d of %d trigrams right.",
                    clean, n));
        } else if (zero != null) {
            int after = Math.max(zero, mean == null ? zero : mean);
            ev.put("zero_ablated_trigram_n_correct", zero);
            ev.put("mean_ablated_trigram_n_correct", mean);
            v.append(clean < n / 4.0 ? "Cannot tell: the model gets too few trigrams right for an ablation to show "
                    + "what the MLP contributes: "
                    : after < clean / 2.0
                    ? "Yes, the MLP is needed (the worklog guessed it was not): "
                    : after < clean * 0.9 ? "Partly: the MLP helps, but the head does most of the work: "
                    : "No, the head does the work (as the worklog guessed): ");
            v.append(String.format(Locale.ROOT, "ablating it takes the model from %d of %d trigrams right to %d "
                    + "(zero-ablation) and %d (mean-ablation).", clean, n, zero, mean == null ? zero : mean));
        }
        if (in.attnOnly() != null) {
            EvalMetrics o = in.attnOnly();
            ev.put("attn_only_trigram_n_correct", o.trigramNCorrect());
            ev.put("attn_only_trigram_avg_correct_prob", o.trigramAvgCorrectProb());
            ev.put("attn_only_loss", o.loss());
            v.append(String.format(Locale.ROOT, " The attention-only model %s gets %d of %d right (average P(c) "
                            + "%.3f, loss %.4f) against this model's %d (%.3f, %.4f).", in.attnOnlySource(),
                    o.trigramNCorrect(), o.nTrigrams(), o.trigramAvgCorrectProb(), o.loss(), clean,
                    sections.at("/metrics/trigram_avg_correct_prob").asDouble(),
                    sections.at("/metrics/loss").asDouble()));
        } else if (!cfg.attnOnly()) {
            v.append(" (Pass --attn-only-model to set an attention-only model beside it.)");
        }
        return new Answer("mlp_needed", "Is the MLP needed, or does the head do the work? (The worklog guessed: "
                + "not required.)", v.toString(), ev, "ablation");
    }

    // 3 ------------------------------------------------------------------------------------------------------------

    static Answer setTest(JsonNode sections) {
        JsonNode att = sections.path("attention");
        JsonNode heads = att.path("heads");
        JsonNode h = heads.size() > 1 ? att.path("any_head") : heads.path(0);
        JsonNode vsProb = h.path("vs_correct_prob"), vsTri = h.path("vs_trigram");
        double thr = att.path("threshold").asDouble(AnalysisContext.DEFAULT_THRESHOLD);
        Map<String, Object> ev = new LinkedHashMap<>();
        ev.put("threshold", thr);
        ev.put("n_attending", vsProb.path("size_a").asInt());
        ev.put("n_predicted", vsProb.path("size_b").asInt());
        ev.put("n_both", vsProb.path("intersection").asInt());
        ev.put("equal_to_predicted", vsProb.path("equal").asBoolean());
        ev.put("n_completing_a_trigram", vsTri.path("size_b").asInt());
        ev.put("n_attending_and_completing", vsTri.path("intersection").asInt());
        ev.put("equal_to_completing", vsTri.path("equal").asBoolean());
        String who = heads.size() > 1 ? "any head's" : "the head's";
        String first = vsProb.path("equal").asBoolean()
                ? String.format(Locale.ROOT, "Yes: the positions where %s attention to the previous token is above "
                + "%.2f and those where the model gives the correct next token more than %.2f are the same %,d "
                + "positions.", who, thr, thr, vsProb.path("size_a").asInt())
                : String.format(Locale.ROOT, "No: the sets differ: %,d vs %,d positions (attention to the previous "
                        + "token > %.2f vs correct-token probability > %.2f); %,d in both, %,d only in the first, %,d "
                        + "only in the second.", vsProb.path("size_a").asInt(), vsProb.path("size_b").asInt(), thr,
                thr, vsProb.path("intersection").asInt(), vsProb.path("only_a").asInt(),
                vsProb.path("only_b").asInt());
        int onlyAttending = vsTri.path("only_a").asInt();
        String second = vsTri.path("equal").asBoolean()
                ? " They are also exactly the positions whose next token completes a trigram."
                : String.format(Locale.ROOT, " Against the positions whose next token really completes a trigram "
                        + "(%,d), attention above %.2f picks %,d of them and %s.", vsTri.path("size_b").asInt(), thr,
                vsTri.path("intersection").asInt(), onlyAttending == 0 ? "no other position: the model predicts the "
                        + "trigrams it has learned, not all of them" : String.format(Locale.ROOT, "%,d other "
                        + "positions, so attention to the previous token is not specific to trigrams", onlyAttending));
        return new Answer("set_test", "Does \"attention to the previous token > " + fmt(thr) + "\" pick out exactly "
                + "the positions where the model predicts a trigram's c?", first + second, ev, "prev-token");
    }

    // 4 ------------------------------------------------------------------------------------------------------------

    /** A row farther than this many standard deviations from the init's expected norm is not "as initialised". */
    static final double INIT_Z = 3;
    /** A row whose cosine with its initial value is above this has not been trained. */
    static final double UNTOUCHED_COSINE = 0.999;

    static Answer finalPosition(Weights w, JsonNode sections, Weights initial) {
        ModelConfig cfg = w.cfg;
        int N = cfg.nCtx(), D = cfg.dModel();
        float[] pos = w.copyOf("pos_embed.W_pos");
        double sigma = 0.8 / Math.sqrt(D);
        // the norm of a D-dimensional N(0, sigma^2) vector: mean about sigma sqrt(D - 1/2), sd about sigma / sqrt 2
        double initMean = sigma * Math.sqrt(D - 0.5), initSd = sigma / Math.sqrt(2);
        double[] norms = new double[N];
        for (int i = 0; i < N; i++) {
            norms[i] = norm(pos, i * D, D);
        }
        double finalNorm = norms[N - 1];
        double[] trained = Arrays.copyOfRange(norms, 0, N - 1);
        double medianTrained = median(trained);
        double zFinal = (finalNorm - initMean) / initSd, zTrained = (medianTrained - initMean) / initSd;
        // training pulls neighbouring positions together; two independent init draws have cosine 0 +- 1/sqrt(D)
        double cosNeighbour = dot(pos, pos, (N - 2) * D, (N - 1) * D, D) / (finalNorm * norms[N - 2]);
        double[] trainedNeighbours = new double[Math.max(0, N - 2)];
        for (int i = 0; i + 1 < N - 1; i++) {
            trainedNeighbours[i] = dot(pos, pos, i * D, (i + 1) * D, D) / (norms[i] * norms[i + 1]);
        }
        double medianNeighbourCos = median(trainedNeighbours), randomCosSd = 1 / Math.sqrt(D);
        JsonNode qk = sections.at("/circuits/qk_circuit/heads/0/positional_advantage_by_position");
        double advFinal = qk.path(N - 1).asDouble(Double.NaN);
        double advTypical = Explanation.meanOver(qk, 2, N - 2);
        JsonNode quirk = sections.at("/attention/heads/0/quirk");
        double attnFinal = sections.at("/attention/heads/0/mean_prev_attention_by_position").path(N - 1)
                .asDouble(Double.NaN);
        Map<String, Object> ev = new LinkedHashMap<>();
        ev.put("final_position", N - 1);
        ev.put("final_row_norm", finalNorm);
        ev.put("median_trained_row_norm", medianTrained);
        ev.put("init_norm_mean", initMean);
        ev.put("init_norm_sd", initSd);
        ev.put("final_row_z", zFinal);
        ev.put("median_trained_row_z", zTrained);
        ev.put("final_cosine_with_previous_row", cosNeighbour);
        ev.put("median_cosine_of_trained_neighbours", medianNeighbourCos);
        ev.put("init_cosine_sd", randomCosSd);
        ev.put("positional_advantage_final", advFinal);
        ev.put("positional_advantage_typical", advTypical);
        ev.put("mean_prev_attention_final", attnFinal);
        ev.put("median_prev_attention", quirk.path("median_value").asDouble(Double.NaN));
        String initCompare = "";
        Boolean untouched = null, trainedMoved = null;
        if (initial != null) {
            float[] init = initial.copyOf("pos_embed.W_pos");
            double cos = dot(pos, init, (N - 1) * D, (N - 1) * D, D) / (finalNorm * norm(init, (N - 1) * D, D));
            double ratio = finalNorm / norm(init, (N - 1) * D, D);
            double cosTrained = 0;
            for (int i = 0; i < N - 1; i++) {
                cosTrained += dot(pos, init, i * D, i * D, D) / (norms[i] * norm(init, i * D, D)) / (N - 1);
            }
            ev.put("cosine_with_initial", cos);
            ev.put("norm_ratio_to_initial", ratio);
            ev.put("mean_cosine_with_initial_trained_rows", cosTrained);
            untouched = cos > UNTOUCHED_COSINE && ratio <= 1 + 1e-6;
            trainedMoved = cosTrained < UNTOUCHED_COSINE;
            initCompare = String.format(Locale.ROOT, " Against its initial value it has cosine %.4f and %.3f times "
                            + "its norm (%s), while the trained rows keep a cosine of %.3f with theirs on average.",
                    cos, ratio, untouched ? "only weight decay has touched it" : "it has moved", cosTrained);
        }
        String verdict;
        // the initial value, where known, decides; otherwise the init's distribution does
        boolean looksInit = untouched != null ? untouched
                : Math.abs(zFinal) < INIT_Z && Math.abs(cosNeighbour) < INIT_Z * randomCosSd;
        boolean trainedDiffer = trainedMoved != null ? trainedMoved
                : Math.abs(zTrained) >= INIT_Z || medianNeighbourCos >= INIT_Z * randomCosSd;
        String numbers = String.format(Locale.ROOT, "W_pos[%d] has norm %.3f, where the init (normal, std 0.8/sqrt(%d)"
                        + " = %.4f per element) gives %.3f +- %.3f, and its cosine with W_pos[%d] is %.2f, where two "
                        + "independent init rows give 0 +- %.2f; the trained rows 0..%d have median norm %.3f and "
                        + "their neighbours a median cosine of %.2f.", N - 1, finalNorm, D, sigma, initMean, initSd,
                N - 2, cosNeighbour, randomCosSd, N - 2, medianTrained, medianNeighbourCos);
        String effect = String.format(Locale.ROOT, " Its positional QK term favours the previous token by %+.2f, "
                + "against %+.2f on average at trained positions, so the final position attends to its previous token "
                + "%.2f on average (median over positions %.2f): a random vector, not a learned rule.", advFinal,
                advTypical, attnFinal, quirk.path("median_value").asDouble(Double.NaN));
        if (looksInit && trainedDiffer) {
            verdict = "Yes, the worklog's guess holds: the loss reads positions 0.." + (N - 2) + " only, and "
                    + "attention is causal, so W_pos[" + (N - 1) + "] gets no gradient, only weight decay. " + numbers
                    + effect + initCompare;
        } else if (looksInit) {
            verdict = "Cannot tell from the weights: W_pos[" + (N - 1) + "] looks as initialised, but so do the "
                    + "trained rows. " + numbers + initCompare;
        } else {
            verdict = "No: W_pos[" + (N - 1) + "] does not look untrained. " + numbers + initCompare;
        }
        return new Answer("final_position", "Why does the final position attend to its previous token? (The "
                + "worklog guessed: position n_ctx-1 never trains.)", verdict, ev, "prev-token");
    }

    // 5 ------------------------------------------------------------------------------------------------------------

    static Answer qkNature(JsonNode sections) {
        JsonNode head = sections.at("/circuits/qk_circuit/heads/0");
        Map<String, Double> shares = Explanation.qkShares(head);
        JsonNode cos = sections.at("/circuits/qk_circuit/positional_cosine");
        PositionalGeometry g = PositionalGeometry.of(cos);
        Map<String, Object> ev = new LinkedHashMap<>();
        shares.forEach((k, v) -> ev.put("share_" + k.replaceAll("[^a-z]+", "_").replaceAll("_$", ""), v));
        ev.put("w_pos_offset_r2", g.r2());
        ev.put("w_pos_cosine_offset_1", g.meanByOffset().length > 1 ? g.meanByOffset()[1] : Double.NaN);
        ev.put("w_pos_min_mean_cosine", g.minMean());
        ev.put("w_pos_min_offset", g.minOffset());
        ev.put("w_pos_sign_changes", g.signChanges());
        String top = shares.entrySet().stream().max(Map.Entry.comparingByValue()).map(Map.Entry::getKey).orElse("");
        double topShare = shares.getOrDefault(top, Double.NaN);
        StringBuilder s = new StringBuilder();
        shares.forEach((k, v) -> s.append(s.length() == 0 ? "" : ", ").append(String.format(Locale.ROOT, "%s %.0f%%",
                k, 100 * v)));
        String kind = top.equals("token-token") && topShare > 0.5 ? "Token-based"
                : top.startsWith("position") && topShare > 0.5 ? "Positional" : "Mixed";
        String verdict = String.format(Locale.ROOT, "%s: of what separates prefixes from other pairs in the QK "
                + "score, %s. ", kind, s);
        verdict += g.rotationLike()
                ? String.format(Locale.ROOT, "The positional embeddings do have a rotation-like geometry: the cosine "
                + "of W_pos[i] and W_pos[j] depends mostly on i - j (R^2 %.2f), %.2f for neighbours, falling to "
                + "%.2f at offset %d (the mean cosine changes sign %s), as directions rotating with position do.",
                g.r2(), g.meanByOffset()[1], g.minMean(), g.minOffset(), times(g.signChanges()))
                : String.format(Locale.ROOT, "The positional embeddings show no rotation-like geometry: the offset "
                + "i - j explains %.0f%% of the variance of the cosine of W_pos[i] and W_pos[j] (neighbours %.2f, "
                + "lowest mean %.2f at offset %d, %d sign changes).", 100 * g.r2(),
                g.meanByOffset().length > 1 ? g.meanByOffset()[1] : Double.NaN, g.minMean(), g.minOffset(),
                g.signChanges());
        return new Answer("qk_nature", "Is the QK circuit token-based or positional, and does it have a "
                + "rotation-like positional geometry?", verdict, ev, "qk");
    }

    /**
     * How much the cosine between positional embeddings depends on the offset alone, over the trained rows (the last
     * row, never trained, is left out).
     *
     * @param r2 share of the variance of cos(W_pos[i], W_pos[j]), i < j, explained by the mean at offset j - i
     */
    record PositionalGeometry(double[] meanByOffset, double r2, double minMean, int minOffset, int signChanges) {
        static final double ROTATION_R2 = 0.5, NEIGHBOUR_COSINE = 0.5;

        /** Neighbouring positions point nearly the same way, the cosine is a function of the offset, and it turns. */
        boolean rotationLike() {
            return meanByOffset.length > 1 && meanByOffset[1] >= NEIGHBOUR_COSINE && r2 >= ROTATION_R2
                    && signChanges >= 1;
        }

        static PositionalGeometry of(JsonNode cos) {
            int n = cos.size() - 1;
            if (n < 3) {
                return new PositionalGeometry(new double[0], Double.NaN, Double.NaN, -1, 0);
            }
            double[] sum = new double[n];
            int[] count = new int[n];
            double all = 0;
            int pairs = 0;
            for (int i = 0; i < n; i++) {
                for (int j = i + 1; j < n; j++) {
                    double c = cos.path(i).path(j).asDouble();
                    sum[j - i] += c;
                    count[j - i]++;
                    all += c;
                    pairs++;
                }
            }
            double[] mean = new double[n];
            for (int d = 1; d < n; d++) {
                mean[d] = sum[d] / count[d];
            }
            double grand = all / pairs, ssTot = 0, ssRes = 0;
            for (int i = 0; i < n; i++) {
                for (int j = i + 1; j < n; j++) {
                    double c = cos.path(i).path(j).asDouble();
                    ssTot += (c - grand) * (c - grand);
                    ssRes += (c - mean[j - i]) * (c - mean[j - i]);
                }
            }
            // offsets seen by few pairs are noise: look for the minimum and the sign changes where most rows count
            int span = Math.max(2, (n * 3) / 4);
            int minD = 1, changes = 0;
            for (int d = 1; d < span; d++) {
                if (mean[d] < mean[minD]) {
                    minD = d;
                }
                if (d > 1 && Math.signum(mean[d]) != Math.signum(mean[d - 1]) && mean[d] != 0) {
                    changes++;
                }
            }
            return new PositionalGeometry(mean, ssTot > 0 ? 1 - ssRes / ssTot : Double.NaN, mean[minD], minD,
                    changes);
        }
    }

    // -------------------------------------------------------------------------------------------------------------

    private static List<String> strings(JsonNode array) {
        List<String> out = new ArrayList<>();
        array.forEach(x -> out.add(x.asText()));
        return out;
    }

    static double norm(float[] v, int off, int n) {
        return Math.sqrt(dot(v, v, off, off, n));
    }

    static double dot(float[] a, float[] b, int offA, int offB, int n) {
        double s = 0;
        for (int i = 0; i < n; i++) {
            s += (double) a[offA + i] * b[offB + i];
        }
        return s;
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        int n = s.length;
        return n == 0 ? Double.NaN : n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    private static String times(int n) {
        return n == 1 ? "once" : n == 2 ? "twice" : n + " times";
    }

    private static String fmt(double v) {
        return String.format(Locale.ROOT, "%.2f", v).replaceAll("0$", "");
    }
}
