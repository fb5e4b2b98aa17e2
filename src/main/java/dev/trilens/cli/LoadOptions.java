package dev.trilens.cli;

import picocli.CommandLine.Option;

/** The flag shared by every command that loads a model file. */
public final class LoadOptions {

    @Option(names = "--allow-non-finite",
            description = "load a model whose weights include NaN or infinite values instead of refusing it "
                    + "(what it computes from them is then meaningless)")
    boolean allowNonFinite;
}
