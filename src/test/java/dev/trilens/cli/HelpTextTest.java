package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** Every command's --help reads as written: no word or file name split across two lines. */
class HelpTextTest {
    /**
     * A line ending inside a token: a file name or identifier broken after its dot ("torch_peer." then "py"), or a
     * call broken before its parenthesis ("torch.load" then "(path"). A sentence that ends in a file name, followed by
     * the next command's row of the command list ("compare.md." then "patch     Move..."), is not one.
     */
    private static final Pattern SPLIT = Pattern.compile("[/_]\\S*\\.\\n\\s*[a-z]\\w*(?!\\w| {2})|\\.\\w+\\n\\s*\\(");

    @Test
    void noWordIsSplitAcrossLines() {
        CommandLine root = Main.commandLine();
        StringBuilder all = new StringBuilder(root.getUsageMessage());
        root.getSubcommands().forEach((name, sub) -> all.append(sub.getUsageMessage()));
        Matcher m = SPLIT.matcher(all);
        StringBuilder found = new StringBuilder();
        while (m.find()) {
            int from = Math.max(0, m.start() - 40), to = Math.min(all.length(), m.end() + 20);
            found.append("\n...").append(all, from, to).append("...");
        }
        assertThat(found.toString()).as("help text split inside a token").isEmpty();
    }
}
