package dev.trilens.cli;

import dev.trilens.data.TrigramDataset;
import picocli.CommandLine.Option;

/** The dataset flags shared by the commands that regenerate the challenge's data. */
public final class DatasetOptions {
    @Option(names = "--seed", description = "dataset seed (default: the checkpoint's, else ${DEFAULT-VALUE})",
            defaultValue = "40")
    long seed;

    @Option(names = "--trigram-prob", description = "fraction of (a, b) pairs that start a trigram "
            + "(default: ${DEFAULT-VALUE})", defaultValue = "0.05")
    double trigramProb;

    @Option(names = "--size", description = "number of sequences (default: ${DEFAULT-VALUE})", defaultValue = "2500")
    int size;

    TrigramDataset generate(int dVocab, int seqLen) {
        return TrigramDataset.generate(dVocab, seqLen, trigramProb, seed, size);
    }
}
