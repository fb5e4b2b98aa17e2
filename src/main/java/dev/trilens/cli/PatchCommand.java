package dev.trilens.cli;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.annotation.JsonUnwrapped;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.data.TrigramDataset;
import dev.trilens.interp.Patching;
import dev.trilens.io.Checkpoint;
import dev.trilens.io.Checkpoints;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.kernels.Kernels;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.StringJoiner;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * `trilens patch`: the attention-swap experiment on one sequence of the evaluation batch.
 *
 * <p>--json prints one object: {@code model}, {@code sequence}, {@code seed}, {@code trigram_prob}, {@code size},
 * then every key of {@link Patching.SwapResult}, then {@code trigram_before} (the dataset's completion of
 * (previous token, query token), -1 if none) and {@code trigram_after} (its completion of (new key token, query
 * token), -1 if none).
 */
@Command(name = "patch", mixinStandardHelpOptions = true,
        description = "Move one position's attention onto an earlier position (every head, or --head) and show the "
                + "model's prediction there before and after. Runs sequence --seq of the evaluation batch.")
public final class PatchCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "checkpoint: PyTorch .pt state dict or .safetensors")
    Path model;

    @Option(names = "--seq", required = true, description = "sequence index in the evaluation batch")
    int seq;

    @Option(names = "--pos", required = true, description = "query position P whose attention is moved")
    int pos;

    @Option(names = "--attend", required = true, description = "position Q (0 <= Q <= P) that P attends instead")
    int attend;

    @Option(names = "--head", description = "only this head (default: every head)")
    Integer head;

    @Option(names = "--layer", description = "only this layer (default: every layer)")
    Integer layer;

    @Mixin
    DatasetOptions data;

    @Option(names = "--json", description = "print one JSON object instead of text")
    boolean json;

    @Mixin
    LoadOptions loading;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /**
     * What `patch --json` prints: the model, the sequence and its dataset, the swap's result (its fields inline), and
     * the trigram completions before and after the swap.
     */
    @JsonPropertyOrder({"model", "sequence", "seed", "trigram_prob", "size"})
    record JsonOutput(String model, int sequence, long seed, @JsonProperty("trigram_prob") double trigramProb,
                      int size, @JsonUnwrapped Patching.SwapResult swap,
                      @JsonProperty("trigram_before") int trigramBefore,
                      @JsonProperty("trigram_after") int trigramAfter) {
    }

    @Override
    public Integer call() throws Exception {
        CommandLine cl = spec.commandLine();
        TrainCommand.check(cl, seq >= 0, "--seq must be >= 0, got " + seq);
        TrainCommand.check(cl, data.size >= 1, "--size must be >= 1, got " + data.size);
        TrainCommand.check(cl, seq < data.size, "--seq " + seq + " is outside the evaluation batch of --size "
                + data.size + " sequences (0.." + (data.size - 1) + ")");
        TrainCommand.check(cl, pos >= 0, "--pos must be >= 0, got " + pos);
        TrainCommand.check(cl, attend >= 0, "--attend must be >= 0, got " + attend);
        TrainCommand.check(cl, attend <= pos, "--attend " + attend + " is after --pos " + pos
                + ": a position can only attend itself and earlier positions (0.." + pos + ")");
        TrainCommand.check(cl, head == null || head >= 0, "--head must be >= 0, got " + head);
        TrainCommand.check(cl, layer == null || layer >= 0, "--layer must be >= 0, got " + layer);

        Checkpoint ckpt = Checkpoints.load(model, loading.allowNonFinite);
        ModelConfig cfg = ckpt.weights().cfg;
        TrainCommand.check(cl, pos < cfg.nCtx(), "--pos " + pos + " is outside the sequence: the model's sequences "
                + "have " + cfg.nCtx() + " positions (0.." + (cfg.nCtx() - 1) + ")");
        TrainCommand.check(cl, head == null || head < cfg.nHeads(), "--head " + head + " is out of range: the model "
                + "has " + cfg.nHeads() + " head(s) (0.." + (cfg.nHeads() - 1) + ")");
        TrainCommand.check(cl, layer == null || layer < cfg.nLayers(), "--layer " + layer + " is out of range: the "
                + "model has " + cfg.nLayers() + " layer(s) (0.." + (cfg.nLayers() - 1) + ")");
        TrigramDataset ds = EvaluateCommand.datasetFor(ckpt, data, cl.getParseResult());
        int[] tokens = ds.tokensOf(seq, seq + 1);
        // a forward pass before and one after, on one sequence
        Kernels.preferForWork(2L * cfg.nCtx() * cfg.tokenMultiplyAdds());
        Patching.SwapResult r = Patching.attentionSwap(new HookedTransformer(ckpt.weights()), tokens, pos, attend,
                layer == null ? -1 : layer, head == null ? -1 : head);
        int triBefore = pos > 0 ? ds.completionOf(tokens[pos - 1], tokens[pos]) : -1;
        int triAfter = ds.completionOf(tokens[attend], tokens[pos]);

        PrintWriter out = cl.getOut();
        if (json) {
            out.println(new ObjectMapper().writeValueAsString(new JsonOutput(model.toString(), seq, ds.seed(),
                    ds.trigramProb(), ds.size(), r, triBefore, triAfter)));
        } else {
            printText(out, cfg, ds, tokens, r, triBefore, triAfter);
        }
        out.flush();
        return 0;
    }

    private void printText(PrintWriter out, ModelConfig cfg, TrigramDataset ds, int[] tokens, Patching.SwapResult r,
                           int triBefore, int triAfter) {
        int P = pos, Q = attend;
        out.printf("model      %s%n           %s%n", model, cfg);
        out.printf("sequence   %d of the evaluation batch (seed=%d trigram_prob=%s size=%d)%n", seq, ds.seed(),
                ds.trigramProb(), ds.size());
        out.printf("tokens     %s%n", window(tokens, P, Q));
        out.printf("           [P] the query position, <Q> the position it is made to attend, (next) the token after P%n");
        String where = (r.layer() < 0 ? (cfg.nLayers() == 1 ? "" : "every layer, ")
                : "layer " + r.layer() + ", ") + (r.head() < 0 ? (cfg.nHeads() == 1 ? "the head" : "every head")
                : "head " + r.head());
        out.printf("swap       position %d (token %d) attends only position %d (token %d), in %s%n", P, tokens[P], Q,
                tokens[Q], where);
        StringJoiner was = new StringJoiner("; ");
        for (int l = 0; l < cfg.nLayers(); l++) {
            for (int h = 0; h < cfg.nHeads(); h++) {
                was.add(String.format("L%dH%d %.3f on position %d%s, %.3f on itself", l, h,
                        r.attentionToNewKeyBefore()[l][h], Q, P > 0 ? String.format(", %.3f on the previous token",
                                r.attentionToPreviousBefore()[l][h]) : "", r.attentionToSelfBefore()[l][h]));
            }
        }
        out.printf("           before, it attended: %s%n", was);
        out.printf("before     top-1 token %d  p=%.4f%s%n", r.before().token(), r.before().prob(),
                nextText(r.nextTokenBefore()));
        out.printf("after      top-1 token %d  p=%.4f%s%n", r.after().token(), r.after().prob(),
                nextText(r.nextTokenAfter()));
        if (r.predictionChanged()) {
            out.printf("change     token %d (top-1 before) is now p=%.4f, rank 1 -> %d; token %d rose from rank %d "
                            + "(p=%.4f) to 1%n", r.before().token(), r.beforeTopAfter().prob(),
                    r.beforeTopAfter().rank(), r.after().token(), r.afterTopBefore().rank(),
                    r.afterTopBefore().prob());
        } else {
            out.printf("change     the top-1 token is unchanged (p %.4f -> %.4f)%n", r.before().prob(),
                    r.after().prob());
        }
        out.printf("trigrams   (%s, %d) %s; (%d, %d) %s%n", P > 0 ? Integer.toString(tokens[P - 1]) : "-", tokens[P],
                P == 0 ? "has no previous token" : triBefore >= 0 ? "starts the dataset's trigram -> " + triBefore
                        : "starts no trigram of the dataset",
                tokens[Q], tokens[P], triAfter >= 0 ? "starts the dataset's trigram -> " + triAfter
                        : "starts no trigram of the dataset");
    }

    private static String nextText(Patching.Prediction next) {
        return next == null ? "   (P is the last position: no next token)"
                : String.format("   (actual next token %d: p=%.4f, rank %d)", next.token(), next.prob(), next.rank());
    }

    /** Positions around Q and P, e.g. "14:7 <15:23> 16:4 ... 20:9 [21:10] (22:67)". */
    static String window(int[] tokens, int P, int Q) {
        int T = tokens.length;
        StringJoiner s = new StringJoiner(" ");
        int from = Math.max(0, P - 5);
        if (Q < from) {
            for (int i = Math.max(0, Q - 1); i <= Math.min(Q + 1, from - 1); i++) {
                s.add(cell(tokens, i, P, Q));
            }
            if (Q + 2 < from) {
                s.add("...");
            }
        }
        for (int i = from; i <= Math.min(T - 1, P + 1); i++) {
            s.add(cell(tokens, i, P, Q));
        }
        return s.toString();
    }

    private static String cell(int[] tokens, int i, int P, int Q) {
        String c = i + ":" + tokens[i];
        if (i == P && i == Q) {
            return "[<" + c + ">]";
        }
        if (i == P) {
            return "[" + c + "]";
        }
        if (i == Q) {
            return "<" + c + ">";
        }
        return i == P + 1 ? "(" + c + ")" : c;
    }
}
