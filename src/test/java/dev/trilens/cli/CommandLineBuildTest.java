package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** A run builds only the command it names; everything that lists or suggests commands still sees them all. */
class CommandLineBuildTest {
    private static final List<String> ALL = List.of("dataset", "evaluate", "bench", "train", "run", "compare", "patch",
            "predict", "serve", "extract", "analyze", "dynamics", "help");

    @Test
    void aNamedCommandIsTheOnlyOneBuiltAfterTheRootsFlags() {
        assertThat(Main.commandLine(List.of("-q", "evaluate", "--model", "train")).getSubcommands().keySet())
                .containsExactly("evaluate");
        assertThat(Main.commandLine(List.of("dynamics", "--run", "x")).getSubcommands().keySet())
                .containsExactly("dynamics");
    }

    @Test
    void theUsageHelpAndAMistypedWordSeeEveryCommandInOrder() {
        assertThat(Main.commandLine().getSubcommands().keySet()).containsExactlyElementsOf(ALL);
        assertThat(Main.commandLine(List.of("--help")).getSubcommands().keySet()).containsExactlyElementsOf(ALL);
        assertThat(Main.commandLine(List.of("help", "evaluate")).getSubcommands().keySet())
                .containsExactlyElementsOf(ALL);
        assertThat(Main.commandLine(List.of("evalute")).getSubcommands().keySet()).containsExactlyElementsOf(ALL);
    }

    @Test
    void aCommandBuiltAloneHasTheWideUsageOfTheFullTree() {
        CommandLine alone = Main.commandLine(List.of("analyze")).getSubcommands().get("analyze");
        CommandLine inTree = Main.commandLine().getSubcommands().get("analyze");
        assertThat(alone.getUsageHelpWidth()).isEqualTo(110);
        assertThat(alone.getUsageMessage()).isEqualTo(inTree.getUsageMessage());
    }
}
