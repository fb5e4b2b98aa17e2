package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
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

    /**
     * Every file name, path or dotted name a description mentions ("model.safetensors", "../shared/bench/...") is
     * printed whole: the line breaker may split after a dot or slash, which the pattern above does not always see.
     */
    @Test
    void everyDottedOrSlashedNameIsPrintedWhole() {
        Pattern token = Pattern.compile("[\\w.~<>-]*[./][\\w.~<>/-]*\\w");
        StringBuilder broken = new StringBuilder();
        List<CommandLine> commands = new java.util.ArrayList<>(List.of(Main.commandLine()));
        commands.addAll(Main.commandLine().getSubcommands().values());
        for (CommandLine cl : commands) {
            String usage = cl.getUsageMessage();
            StringBuilder texts = new StringBuilder(String.join(" ", cl.getCommandSpec().usageMessage().description()));
            cl.getCommandSpec().options().forEach(o -> texts.append(' ').append(String.join(" ", o.description())));
            Matcher m = token.matcher(texts);
            java.util.Set<String> seen = new java.util.HashSet<>();
            while (m.find()) {
                // as many whole copies in the help as the texts have: one intact copy must not hide a split one
                if (seen.add(m.group()) && count(usage, m.group()) < count(texts.toString(), m.group())) {
                    broken.append("\n").append(cl.getCommandName()).append(": ").append(m.group());
                }
            }
        }
        assertThat(broken.toString()).as("names split across lines in --help").isEmpty();
    }

    private static int count(String text, String token) {
        int n = 0;
        for (int i = text.indexOf(token); i >= 0; i = text.indexOf(token, i + token.length())) {
            n++;
        }
        return n;
    }
}
