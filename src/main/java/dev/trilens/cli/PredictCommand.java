package dev.trilens.cli;

import dev.trilens.TrilensException;
import dev.trilens.interp.Probe;
import dev.trilens.interp.TrigramExtractor;
import dev.trilens.io.Checkpoint;
import dev.trilens.io.Checkpoints;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.kernels.Kernels;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * `trilens predict`: what the model does on a token sequence the user gives.
 *
 * <p>--json prints {@link Probe.Prediction}: {@code {"tokens": [...], "positions": [{"pos", "token", "top":
 * [{"token", "prob"}], "next_token", "next_prob", "prev_attention", "attention": [{"head", "prev", "top_keys":
 * [{"pos", "token", "weight"}], "row"}], "rule": {"a", "b", "c"} or null}]}}, the same object as
 * {@code POST /api/predict}.
 */
@Command(name = "predict", mixinStandardHelpOptions = true,
        description = {"Run the model on your own token sequence. For every position: the token, the most likely next "
                + "tokens, the attention on the previous token and where the attention goes, and whether the rule "
                + "extracted from the weights ((a, b) -> c, see 'extract') fires there. Position i predicts token "
                + "i+1."})
public final class PredictCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "checkpoint: PyTorch .pt state dict or .safetensors")
    Path model;

    @Option(names = "--tokens", description = "the sequence: token ids separated by spaces or commas, e.g. "
            + "\"35 36 28 7\"; '-' reads it from standard input")
    String tokens;

    @Option(names = "--tokens-file", description = "read the sequence from this file instead")
    Path tokensFile;

    @Option(names = "--top", defaultValue = "3", description = "how many next tokens to list (default: "
            + "${DEFAULT-VALUE})")
    int top;

    @Option(names = "--json", description = "print one JSON object instead of a table")
    boolean json;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        CommandLine cl = spec.commandLine();
        TrainCommand.check(cl, (tokens == null) != (tokensFile == null),
                "give the sequence with exactly one of --tokens \"35 36 28 ...\", --tokens - (standard input) or "
                        + "--tokens-file FILE");
        TrainCommand.check(cl, top >= 1, "--top must be >= 1, got " + top);
        String text = readTokens();
        Checkpoint ckpt = Checkpoints.load(model);
        ModelConfig cfg = ckpt.weights().cfg;
        TrainCommand.check(cl, top <= cfg.dVocab(), "--top " + top + " is more than the model's " + cfg.dVocab()
                + " tokens");
        int[] seq = Probe.parseTokens(text, cfg);
        // one sequence, then the weights-only extraction: a short job (see Kernels)
        Kernels.preferForWork((double) cfg.nCtx() * cfg.tokenMultiplyAdds() + TrigramExtractor.multiplyAdds(cfg, null));
        Probe probe = new Probe(new HookedTransformer(ckpt.weights()), TrigramExtractor.extract(ckpt.weights()),
                null);
        Probe.Prediction r = probe.predict(seq, top);
        PrintWriter out = cl.getOut();
        if (json) {
            out.println(Probe.JSON.writeValueAsString(r));
        } else {
            printText(out, cfg, probe, r);
        }
        out.flush();
        return 0;
    }

    private String readTokens() {
        try {
            if (tokensFile != null) {
                if (!Files.isRegularFile(tokensFile)) {
                    throw new TrilensException("--tokens-file " + tokensFile + ": no such file");
                }
                return Files.readString(tokensFile, StandardCharsets.UTF_8);
            }
            if (tokens.equals("-")) {
                return new String(System.in.readAllBytes(), StandardCharsets.UTF_8);
            }
            return tokens;
        } catch (IOException e) {
            throw new TrilensException("cannot read the token sequence: " + e.getMessage());
        }
    }

    private void printText(PrintWriter out, ModelConfig cfg, Probe probe, Probe.Prediction r) {
        out.printf("model      %s%n           %s%n", model, cfg);
        out.printf("rule       %d trigrams (a, b) -> c extracted from the weights; it fires at position i when "
                + "tokens i-1 and i are (a, b)%n", probe.rules().trigrams().size());
        out.printf("           position i predicts token i+1; 'next' is the probability of the actual next token%n");
        List<String> heads = probe.headNames();
        String attendsHeader = heads.size() == 1 ? "attends (pos:token weight)"
                : "attends (pos:token weight), per head " + String.join(" | ", heads);
        out.printf("%n%4s %5s  %-" + (top * 11) + "s %6s  %9s  %-32s %s%n", "pos", "token", "top " + top
                + " next tokens (p)", "next", "prev-attn", attendsHeader, "rule");
        int fired = 0, right = 0;
        for (Probe.Position p : r.positions()) {
            List<String> tops = new ArrayList<>();
            for (Probe.TokenProb t : p.top()) {
                tops.add(String.format("%d %.3f", t.token(), t.prob()));
            }
            List<String> keys = new ArrayList<>();
            for (Probe.HeadAttention h : p.attention()) {
                List<String> ks = new ArrayList<>();
                for (Probe.Key k : h.topKeys()) {
                    if (k.weight() >= 0.05 || ks.isEmpty()) {
                        ks.add(String.format("%d:%d %.2f", k.pos(), k.token(), k.weight()));
                    }
                }
                keys.add(String.join(" ", ks));
            }
            String rule = "-";
            if (p.rule() != null) {
                fired++;
                boolean ok = p.top().get(0).token() == p.rule().c();
                right += ok ? 1 : 0;
                rule = String.format("(%d, %d) -> %d%s", p.rule().a(), p.rule().b(), p.rule().c(),
                        ok ? "" : ", not the top prediction");
            }
            out.printf("%4d %5d  %-" + (top * 11) + "s %6s  %9s  %-32s %s%n", p.pos(), p.token(),
                    String.join("  ", tops), p.nextProb() == null ? "-" : String.format("%.3f", p.nextProb()),
                    p.prevAttention() == null ? "-" : String.format("%.3f", p.prevAttention()),
                    String.join(" | ", keys), rule);
        }
        out.printf("%nthe rule fires at %d of %d positions; its c is the top prediction at %d of them%n", fired,
                r.positions().size(), right);
    }
}
