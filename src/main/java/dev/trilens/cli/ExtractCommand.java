package dev.trilens.cli;

import com.fasterxml.jackson.annotation.JsonUnwrapped;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.trilens.data.TrigramDataset;
import dev.trilens.interp.ExtractionScore;
import dev.trilens.interp.TrigramExtractor;
import dev.trilens.io.Checkpoint;
import dev.trilens.io.Checkpoints;
import dev.trilens.io.DatasetSource;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.kernels.Kernels;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "extract", mixinStandardHelpOptions = true,
        description = {"List the trigrams (a, b, c) a one-layer model has learned, read from its weights alone: no "
                + "training data and no forward pass over a dataset. For every pair (a, b) the model's components are "
                + "evaluated on its own embedding vectors (query b at p, key a at p-1: QK attention, OV copy, MLP, "
                + "unembed), and (a, b, argmax c) is listed when P(c) is above the cut: by default the middle of the "
                + "widest gap of the pairs' P(c) above 1/d_vocab, which needs no labels. Beside them it lists the "
                + "bigram defaults (*, b, c): for each b, the median over every a' of P(. | a', b), kept where its "
                + "argmax is above Otsu's split of log(d_vocab * P) over the b's.",
                "Against the dataset (--seed/--trigram-prob, else the checkpoint's metadata, else the challenge's, as "
                        + "evaluate chooses it) it also reports precision and recall against the dataset's trigrams, recall against every trigram the model gets "
                        + "right by argmax and against those of them whose prediction depends on a, and precision and "
                        + "recall of the bigram defaults' (b, c) against the dataset's."})
public final class ExtractCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "checkpoint: PyTorch .pt state dict or .safetensors")
    Path model;

    @Option(names = "--seed", description = "dataset seed, to compare with its trigrams (default: the checkpoint's "
            + "metadata, else 40)")
    Long seed;

    @Option(names = "--trigram-prob", description = "dataset trigram_prob (default: the checkpoint's metadata, else "
            + "0.05)")
    Double trigramProb;

    @Option(names = "--json", description = "print one JSON object instead of a table")
    boolean json;

    @Option(names = "--top", description = "list only the K most confident trigrams (default: all); counts, "
            + "precision and recall always cover all")
    Integer top;

    @Option(names = "--threshold", description = "extract (a, b, c) when P(c) > this fixed value, overriding the "
            + "label-free cut (default: the middle of the widest gap of the pairs' P(c) above 1/d_vocab)")
    Double threshold;

    @Option(names = "--background", defaultValue = "random_context", description = "what else the query at b sees: "
            + "random_context (positions 0..p-2 hold uniformly random tokens, in expectation) or two_key (only a and "
            + "b) (default: ${DEFAULT-VALUE})")
    String background;

    @Option(names = "--positions", split = ",", paramLabel = "<p>", description = "query positions p to average "
            + "over, comma-separated (default: 1..n_ctx-2, at most 16 evenly spaced)")
    int[] positions;

    @CommandLine.Mixin
    LoadOptions loading;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /** The keys of `extract --json`, in order. */
    public static final List<String> JSON_KEYS = List.of("model", "config", "method", "background", "threshold",
            "cut", "positions", "n_extracted", "max_rejected_confidence", "min_extracted_confidence", "seconds",
            "trigrams", "bigram_method", "bigram_cut", "bigram_defaults", "evaluation");

    @Override
    public Integer call() throws Exception {
        CommandLine cl = spec.commandLine();
        if (top != null && top < 0) {
            throw new CommandLine.ParameterException(cl, "--top must be >= 0, got " + top);
        }
        if (threshold != null && !(threshold > 0 && threshold < 1)) {
            throw new CommandLine.ParameterException(cl, "--threshold must be > 0 and < 1, got " + threshold);
        }
        TrigramExtractor.Background bg = switch (background) {
            case "random_context" -> TrigramExtractor.Background.RANDOM_CONTEXT;
            case "two_key" -> TrigramExtractor.Background.TWO_KEY;
            default -> throw new CommandLine.ParameterException(cl, "unknown --background '" + background
                    + "', expected random_context or two_key");
        };
        if (positions != null && positions.length == 0) {
            throw new CommandLine.ParameterException(cl, "--positions needs at least one position");
        }
        Checkpoint ckpt = Checkpoints.load(model, loading.allowNonFinite);
        ModelConfig cfg = ckpt.weights().cfg;
        Kernels.preferForWork(TrigramExtractor.multiplyAdds(cfg, positions));
        TrigramExtractor.Result r = TrigramExtractor.extract(ckpt.weights(),
                new TrigramExtractor.Options(threshold, positions, bg));
        TrigramDataset ds = knownDataset(ckpt);
        ExtractionScore.Evaluation ev = ExtractionScore.evaluate(r, new HookedTransformer(ckpt.weights()), ds);
        int k = top == null ? -1 : top;
        PrintWriter out = cl.getOut();
        if (json) {
            out.println(new ObjectMapper().writeValueAsString(new Output(model.toString(), Config.of(cfg),
                    r.toJson(k), ev)));
        } else {
            printText(out, cfg, r, ds, ev, k);
        }
        out.flush();
        return 0;
    }

    /**
     * The dataset to compare with: from the flags, else the checkpoint's metadata, else the challenge's, as evaluate
     * chooses it. Only its trigrams are read, so one sequence is enough.
     */
    private TrigramDataset knownDataset(Checkpoint ckpt) {
        return DatasetSource.resolve(ckpt, seed, trigramProb).generate(ckpt.weights().cfg, 1);
    }

    /** What `extract --json` prints: the model, its shape, the extracted table, then its evaluation. */
    record Output(String model, Config config, @JsonUnwrapped TrigramExtractor.Table table,
                  ExtractionScore.Evaluation evaluation) {
    }

    /** The model's shape; normalization is "LN" or null. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    record Config(int dVocab, int nCtx, int dModel, int nLayers, int nHeads, int dHead, int dMlp,
                  String normalization) {
        static Config of(ModelConfig cfg) {
            return new Config(cfg.dVocab(), cfg.nCtx(), cfg.dModel(), cfg.nLayers(), cfg.nHeads(), cfg.dHead(),
                    cfg.dMlp(), cfg.layerNorm() ? "LN" : null);
        }
    }

    private void printText(PrintWriter out, ModelConfig cfg, TrigramExtractor.Result r, TrigramDataset ds,
                           ExtractionScore.Evaluation ev, int k) {
        out.printf("model      %s%n           %s%n", model, cfg);
        out.printf("method     %s%n", TrigramExtractor.METHOD);
        int[] pos = r.positions();
        out.printf("extracted  %d trigrams (background %s, %d query position%s %s)  [%.2f s]%n", r.trigrams().size(),
                r.options().background().key, pos.length, pos.length == 1 ? "" : "s", positionsText(pos), r.seconds());
        out.printf("           kept where %s%n", r.cut().describe("P(c)", cfg.dVocab()));
        out.printf("bigrams    %d bigram defaults (*, b, c), where b predicts c whatever a comes before it (the "
                + "median over every a' of P(c | a', b)): %s%n",
                r.bigramDefaults().size(), defaultsText(r.bigramDefaults()));
        out.printf("           kept where %s%n", r.bigramCut().describe("median P(c)", cfg.dVocab()));
        ExtractionScore.Agreement d = ev.vsDataset(), m = ev.vsModel(), dep = ev.vsModelADependent(),
                mc = ev.vsModelConfident();
        ExtractionScore.PairAgreement bd = ev.bigramDefaultsVsDataset();
        out.printf("dataset    seed=%d trigram_prob=%s: %d trigrams; the model gets %d right by argmax (position 1 "
                + "of [a, b, c]); %d of those depend on a (P(c | a, b) > %s x the median over every other a')%n",
                ds.seed(), ds.trigramProb(), d.nReference(), m.nReference(), dep.nReference(),
                java.math.BigDecimal.valueOf(ExtractionScore.A_DEPENDENCE_RATIO).stripTrailingZeros()
                        .toPlainString());
        out.printf("           vs dataset:          precision %.3f  recall %.3f  (%d of %d)%n", d.precision(),
                d.recall(), d.nCorrect(), d.nReference());
        out.printf("           vs model (argmax):   precision %.3f  recall %.3f  (%d of %d): recall against every "
                + "argmax-correct trigram%n", m.precision(), m.recall(), m.nCorrect(), m.nReference());
        out.printf("           vs model (a-dependent): precision %.3f  recall %.3f  (%d of %d): recall against "
                + "the argmax-correct trigrams whose prediction depends on a%n", dep.precision(), dep.recall(),
                dep.nCorrect(), dep.nReference());
        out.printf("           vs model (P(c) > %.4f): precision %.3f  recall %.3f  (%d of %d)%n", r.threshold(),
                mc.precision(), mc.recall(), mc.nCorrect(), mc.nReference());
        out.printf("           %d argmax-correct trigrams are not extracted, %d of them with their (b, c) "
                + "among the bigram defaults%s%n", ev.nArgmaxCorrectNotExtracted(),
                ev.nNotExtractedBigramDefaults(),
                ev.nPredictedUnconfident() == 0 ? "" : String.format("; %d argmax-correct trigrams have P(c) at "
                        + "most the cut (%.3f on average)", ev.nPredictedUnconfident(), ev.meanProbUnconfident()));
        out.printf("           bigram defaults vs the dataset's %d distinct (b, c) pairs: precision %.3f  recall "
                + "%.3f  (%d of %d listed)%n", bd.nReference(), bd.precision(), bd.recall(), bd.nCorrect(),
                bd.nListed());
        out.println();
        out.println("Which circuit quantities decide each entry: attn/qk_adv = QK (does b at p attend a at p-1, score "
                + "over attending itself); P(c|no a) and P(c|all a) = the OV+MLP readout with no / all attention on "
                + "a; margin = logit(c) - logit(runner-up), split into direct contributions (embed, ov_prev = OV "
                + "output of a, ov_rest = the rest of the attention output, mlp, bias).");
        out.printf("%4s %4s %4s  %6s  %-11s %-9s %10s %10s  %4s %7s  %7s %7s %7s %7s %7s  %s%n", "a", "b", "c", "P(c)",
                "attn", "qk_adv", "P(c|no a)", "P(c|all a)", "2nd", "margin", "embed", "ov_prev", "ov_rest", "mlp",
                "bias", "decided_by");
        List<TrigramExtractor.Entry> es = r.trigrams();
        int n = k < 0 ? es.size() : Math.min(k, es.size());
        for (int i = 0; i < n; i++) {
            TrigramExtractor.Entry e = es.get(i);
            double[] c = e.marginContributions();
            out.printf("%4d %4d %4d  %6.3f  %-11s %-9s %10.3f %10.3f  %4d %7.2f  %7.2f %7.2f %7.2f %7.2f %7.2f  %s%n",
                    e.a(), e.b(), e.c(), e.confidence(), list(e.attnPrev(), "%.2f"), list(e.qkAdvantage(), "%+.1f"),
                    e.confidenceNoAttnPrev(), e.confidenceFullAttnPrev(), e.runnerUp(), e.logitMargin(), c[0], c[1],
                    c[2], c[3], c[4], e.decidedBy());
        }
        if (n < es.size()) {
            out.printf("... %d more (--top to list more)%n", es.size() - n);
        }
    }

    private static String list(double[] v, String fmt) {
        List<String> parts = new ArrayList<>();
        for (double x : v) {
            parts.add(String.format(fmt, x));
        }
        return String.join(",", parts);
    }

    private static String defaultsText(List<TrigramExtractor.BigramDefault> ds) {
        List<String> parts = new ArrayList<>();
        for (TrigramExtractor.BigramDefault d : ds) {
            parts.add(d.b() + "->" + d.c());
        }
        return parts.isEmpty() ? "none" : String.join(" ", parts);
    }

    private static String positionsText(int[] p) {
        if (p.length <= 6) {
            List<String> s = new ArrayList<>();
            for (int x : p) {
                s.add(Integer.toString(x));
            }
            return String.join(",", s);
        }
        return p[0] + "," + p[1] + ",...," + p[p.length - 1];
    }
}
