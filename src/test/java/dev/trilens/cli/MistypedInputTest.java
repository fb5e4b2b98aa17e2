package dev.trilens.cli;

import org.junit.jupiter.api.Test;

/** A mistyped command or flag: one line naming it, the nearest real ones, and where to look. */
class MistypedInputTest extends CliTestBase {

    @Test
    void aMistypedCommandGetsTheNearestCommands() {
        assertOneLineErrorOnly(2, "'evalute', '--model', 'x.pt'; did you mean evaluate", "evalute", "--model", "x.pt");
        assertOneLineErrorOnly(2, "'anlyze'; did you mean analyze?", "anlyze");
    }

    @Test
    void aMistypedFlagGetsTheNearestFlag() {
        assertOneLineErrorOnly(2, "Unknown options: '--sede', '3'; did you mean --seed? (see 'trilens evaluate --help')",
                "evaluate", "--model", "x.pt", "--sede", "3");
    }

    @Test
    void aFlagWithNothingCloseGetsNoGuess() {
        assertOneLineErrorOnly(2, "Unknown option: '--zzzzzzzz' (see 'trilens dataset --help')", "dataset",
                "--zzzzzzzz");
    }

    @Test
    void aMistypedKernelChoiceIsRefusedBeforeAnyWork() {
        String before = System.getProperty("trilens.kernels");
        System.setProperty("trilens.kernels", "vectr");
        try {
            assertOneLineErrorOnly(2, "-Dtrilens.kernels=vectr is no kernel choice; expected vector or scalar",
                    "evaluate", "--model", "x.pt");
        } finally {
            if (before == null) {
                System.clearProperty("trilens.kernels");
            } else {
                System.setProperty("trilens.kernels", before);
            }
        }
    }
}
