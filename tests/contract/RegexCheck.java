/*
 * Contract oracle for druid_access.javaregex: what java.util.regex (the engine Druid compiles a
 * permission's resource name with) says of a pattern, and whether it matches a resource name.
 *
 * Run as a single-file program (Java 11+, no build step):  java RegexCheck.java SUBJECT
 *
 * stdin:  one pattern per line, as the hex of its UTF-16 code units (4 hex digits per unit).
 * stdout: one line per pattern, in order: "REFUSED" when Pattern.compile throws, else "COMPILES"
 *         followed by " MATCHES" or " NO" for Pattern.matcher(SUBJECT).matches() (a whole-string
 *         match, as Druid's authorizer does), or " ERROR" when matching throws (stack overflow).
 */

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.regex.Pattern;

public class RegexCheck {
    public static void main(String[] args) throws Exception {
        String subject = args[0];
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        String line;
        while ((line = in.readLine()) != null) {
            out.println(check(decode(line.trim()), subject));
        }
        out.flush();
    }

    private static String decode(String hex) {
        StringBuilder s = new StringBuilder(hex.length() / 4);
        for (int i = 0; i < hex.length(); i += 4) {
            s.append((char) Integer.parseInt(hex.substring(i, i + 4), 16));
        }
        return s.toString();
    }

    private static String check(String pattern, String subject) {
        Pattern compiled;
        try {
            compiled = Pattern.compile(pattern);
        } catch (Throwable e) {
            return "REFUSED";
        }
        try {
            return compiled.matcher(subject).matches() ? "COMPILES MATCHES" : "COMPILES NO";
        } catch (Throwable e) {
            return "COMPILES ERROR";
        }
    }
}
