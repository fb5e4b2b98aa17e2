package dev.trilens.io;

/**
 * Text taken from a file (a tensor name, a dtype, a metadata value), made safe to quote in a one-line message: a
 * file can hold newlines, terminal escape sequences or bidirectional overrides, which would otherwise reach the
 * user's terminal as they are.
 */
public final class FileText {

    /** Longer quotes are cut: a message names what was wrong, it does not echo the file. */
    static final int MAX_SHOWN = 120;

    private FileText() {
    }

    /** s with control and formatting characters escaped, cut to {@value #MAX_SHOWN} characters. */
    public static String show(String s) {
        if (s == null) {
            return "null";
        }
        String cut = s.length() > MAX_SHOWN ? s.substring(0, MAX_SHOWN) : s;
        String shown = escape(cut);
        return cut.length() < s.length() ? shown + "... (" + s.length() + " characters)" : shown;
    }

    /** s with every character a terminal could act on written as a \\xNN or \\uNNNN escape instead. */
    public static String escape(String s) {
        StringBuilder b = null;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (unsafe(c)) {
                if (b == null) {
                    b = new StringBuilder(s.length() + 16).append(s, 0, i);
                }
                b.append(c < 0x100 ? String.format("\\x%02x", (int) c) : String.format("\\u%04x", (int) c));
            } else if (b != null) {
                b.append(c);
            }
        }
        return b == null ? s : b.toString();
    }

    private static boolean unsafe(char c) {
        if (Character.isISOControl(c)) {
            return true;
        }
        int type = Character.getType(c);
        // FORMAT covers the bidirectional overrides that make text display in another order than it is stored
        return type == Character.FORMAT || type == Character.LINE_SEPARATOR
                || type == Character.PARAGRAPH_SEPARATOR;
    }
}
