package dev.trilens.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.io.Checkpoint;
import dev.trilens.io.Checkpoints;
import dev.trilens.io.DatasetSource;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.kernels.Kernels;
import dev.trilens.train.EvalMetrics;
import dev.trilens.train.Metrics;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

@Command(name = "evaluate", mixinStandardHelpOptions = true,
        description = "Regenerate the dataset and report the model's loss, correct-token probabilities and the "
                + "challenge's trigram metrics. d_vocab and seq_len come from the model.")
public final class EvaluateCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "checkpoint: PyTorch .pt state dict or .safetensors")
    Path model;

    @Mixin
    DatasetOptions data;

    @Option(names = "--json", description = "print one JSON object instead of a table")
    boolean json;

    @Mixin
    LoadOptions loading;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        Checkpoint ckpt = Checkpoints.load(model, loading.allowNonFinite);
        ModelConfig cfg = ckpt.weights().cfg;
        DatasetSource.Spec dataSpec = dataSpecFor(ckpt, data, spec.commandLine().getParseResult());
        Kernels.preferForWork((double) data.size * cfg.nCtx() * cfg.tokenMultiplyAdds());
        // generated and run a chunk at a time: any --size in bounded memory
        TrigramDataset[] first = {null};
        EvalMetrics m = Metrics.evaluate(new HookedTransformer(ckpt.weights()), cfg.dVocab(), cfg.nCtx(), dataSpec.trigramProb(),
                dataSpec.seed(), data.size, ds -> first[0] = ds);
        TrigramDataset ds = first[0];
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            out.println(new ObjectMapper().writeValueAsString(m));
        } else {
            out.printf("model      %s%n           %s%n", model, cfg);
            out.printf("dataset    seed=%d trigram_prob=%s size=%d seq_len=%d n_trigrams=%d%n", ds.seed(),
                    ds.trigramProb(), data.size, ds.seqLen(), ds.nTrigrams());
            for (Map.Entry<String, Object> e : dev.trilens.io.JsonFields.of(m).entrySet()) {
                Object v = e.getValue();
                out.printf("%-25s %s%n", e.getKey(), v instanceof Double d ? String.format("%.6f", d) : v);
            }
        }
        out.flush();
        return 0;
    }

    /** The dataset to evaluate on, as {@link DatasetSource#resolve} chooses it from the flags and the checkpoint. */
    static TrigramDataset datasetFor(Checkpoint ckpt, DatasetOptions opts, CommandLine.ParseResult parsed) {
        checkFitsInOneBatch(ckpt.weights().cfg, opts.size, parsed.commandSpec().name());
        return dataSpecFor(ckpt, opts, parsed).generate(ckpt.weights().cfg, opts.size);
    }

    /**
     * The commands that hold the whole evaluation batch at once (analyze keeps every position's attention and
     * logits) refuse a --size whose largest activations, [size, n_ctx, d_vocab] logits or [size, heads, n_ctx, n_ctx]
     * patterns, cannot be one array or would take more than an eighth of the heap (the analyses keep several of
     * that size); evaluate streams instead.
     */
    static void checkFitsInOneBatch(ModelConfig cfg, long size, String command) {
        long perSequence = (long) cfg.nCtx() * Math.max(cfg.dVocab(), (long) cfg.nHeads() * cfg.nCtx());
        long floats = size * perSequence;
        long heap = Runtime.getRuntime().maxMemory();
        if (floats > Integer.MAX_VALUE - 8 || floats * Float.BYTES > heap / 8) {
            long most = Math.max(1, Math.min((Integer.MAX_VALUE - 8L) / perSequence, heap / 8 / Float.BYTES
                    / perSequence));
            throw new TrilensException(String.format("--size %d is too large for %s, which holds the whole batch: "
                    + "its activations would take %.1f GB of a %.1f GB heap; use --size %d or fewer (evaluate takes "
                    + "any size)", size, command, floats * 4e-9, heap / 1e9, most));
        }
    }

    /** The flags the user passed (picocli fills in defaults; those do not count), then the checkpoint's metadata. */
    static DatasetSource.Spec dataSpecFor(Checkpoint ckpt, DatasetOptions opts, CommandLine.ParseResult parsed) {
        return DatasetSource.resolve(ckpt, parsed.hasMatchedOption("--seed") ? opts.seed : null,
                parsed.hasMatchedOption("--trigram-prob") ? opts.trigramProb : null);
    }
}
