package dev.trilens.io;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class FileTextTest {

    @Test
    void quotesUpTo120CharactersAndSaysHowLongTheRestWas() {
        String exact = "a".repeat(120);
        assertThat(FileText.show(exact)).isEqualTo(exact);
        assertThat(FileText.show(exact + "b")).isEqualTo(exact + "... (121 characters)");
        assertThat(FileText.show(null)).isEqualTo("null");
    }

    @Test
    void escapesWhatATerminalWouldActOn() {
        // control characters as \xNN, formatting and separator characters beyond Latin-1 as \\uNNNN
        assertThat(FileText.escape("a\nb\u001b[31m\u0085c")).isEqualTo("a\\x0ab\\x1b[31m\\x85c");
        assertThat(FileText.escape("x\u202ey\u2028z\u2029")).isEqualTo("x\\u202ey\\u2028z\\u2029");
        // printable text beyond ASCII stays as it is
        String plain = "caf\u00e9 \u0100\u4e2d\u00ff";
        assertThat(FileText.escape(plain)).isSameAs(plain);
    }
}
