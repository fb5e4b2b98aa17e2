package dev.trilens.cli;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import dev.trilens.data.TrigramDataset;
import dev.trilens.io.AtomicFiles;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

@Command(name = "dataset", mixinStandardHelpOptions = true,
        description = "Generate the challenge's trigram dataset exactly as the ARENA code does (PyTorch's MT19937).")
public final class DatasetCommand implements Callable<Integer> {

    @Option(names = "--d-vocab", defaultValue = "75", description = "vocabulary size (default: ${DEFAULT-VALUE})")
    int dVocab;

    @Option(names = "--seq-len", defaultValue = "50", description = "tokens per sequence (default: ${DEFAULT-VALUE})")
    int seqLen;

    @Mixin
    DatasetOptions data;

    @Option(names = "--out", description = "write the JSON here instead of to standard output")
    Path out;

    @Option(names = "--show", paramLabel = "N", description = "print the first N sequences as text (forced trigram "
            + "completions marked with *) instead of JSON on standard output")
    Integer show;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        if (show != null && show < 0) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--show must be >= 0, got " + show);
        }
        TrigramDataset ds = data.generate(dVocab, seqLen);
        if (out != null) {
            AtomicFiles.write(out, os -> writeJson(ds, os));
        }
        if (show != null) {
            printFirst(ds, Math.min(show, ds.size()), spec.commandLine().getOut());
        } else if (out == null) {
            writeJson(ds, new NonClosingOutputStream(System.out));
        }
        return 0;
    }

    private static void printFirst(TrigramDataset ds, int n, PrintWriter pw) {
        pw.printf("d_vocab=%d seq_len=%d seed=%d n_trigrams=%d size=%d%n", ds.dVocab(), ds.seqLen(), ds.seed(),
                ds.nTrigrams(), ds.size());
        for (int s = 0; s < n; s++) {
            StringBuilder sb = new StringBuilder();
            sb.append(String.format("%4d:", s));
            for (int t = 0; t < ds.seqLen(); t++) {
                sb.append(' ').append(ds.token(s, t));
                if (ds.completesTrigram(s, t)) {
                    sb.append('*');
                }
            }
            pw.println(sb);
        }
        pw.flush();
    }

    static void writeJson(TrigramDataset ds, OutputStream os) throws IOException {
        try (JsonGenerator g = new JsonFactory().createGenerator(os, JsonEncoding.UTF8)) {
            g.writeStartObject();
            g.writeObjectFieldStart("config");
            g.writeNumberField("d_vocab", ds.dVocab());
            g.writeNumberField("seq_len", ds.seqLen());
            if (!Double.isNaN(ds.trigramProb())) {
                g.writeNumberField("trigram_prob", ds.trigramProb());
            }
            g.writeNumberField("n_trigrams", ds.nTrigrams());
            g.writeNumberField("seed", ds.seed());
            g.writeNumberField("size", ds.size());
            g.writeEndObject();
            g.writeArrayFieldStart("trigrams");
            for (int[] tri : ds.trigrams()) {
                g.writeArray(tri, 0, 3);
            }
            g.writeEndArray();
            g.writeArrayFieldStart("tokens");
            int[] tokens = ds.tokens();
            for (int s = 0; s < ds.size(); s++) {
                g.writeArray(tokens, s * ds.seqLen(), ds.seqLen());
            }
            g.writeEndArray();
            g.writeEndObject();
            g.writeRaw('\n');
        }
    }
}
