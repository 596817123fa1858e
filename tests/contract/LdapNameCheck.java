/*
 * Contract oracle for druid_access.group_pattern: does Druid's LDAP role provider accept a groupPattern?
 *
 * Run as a single-file program (Java 11+, no build step):  java LdapNameCheck.java
 *
 * stdin:  one pattern per line, written as the hex of its UTF-16 code units (4 hex digits per unit), so
 *         that any character, line breaks and lone surrogates included, survives the trip; an empty
 *         line is the empty pattern.
 * stdout: one line per input line, in order: "ACCEPT" or "REFUSE <exception class>: <message>".
 *
 * The check is what LDAPRoleProvider.getRoles does with a mapping's groupPattern (Druid 27.0.0 and
 * 37.0.0 compile it identically): a pattern starting with "*," is parsed without those two characters,
 * else one ending with ",*" without those two, else whole, with javax.naming.ldap.LdapName; the parsed
 * name is then compared with a group DN (startsWith / endsWith / equals). Druid turns an
 * InvalidNameException into "Configuration problem - Invalid groupMapping"; any other exception from
 * the parser (LdapName lets IllegalArgumentException and IndexOutOfBoundsException escape for some
 * values) propagates as it is. Either way the LDAP user's request fails, so both are REFUSE here.
 */

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import javax.naming.ldap.LdapName;

public class LdapNameCheck {
    private static final String GROUP = "cn=analysts,ou=groups,dc=example,dc=org";

    public static void main(String[] args) throws Exception {
        LdapName group = new LdapName(GROUP);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        String line;
        while ((line = in.readLine()) != null) {
            out.println(check(decode(line.trim()), group));
        }
        out.flush();
    }

    private static String decode(String hex) {
        if (hex.length() % 4 != 0) {
            throw new IllegalArgumentException("input line is not UTF-16 hex: " + hex);
        }
        StringBuilder s = new StringBuilder(hex.length() / 4);
        for (int i = 0; i < hex.length(); i += 4) {
            s.append((char) Integer.parseInt(hex.substring(i, i + 4), 16));
        }
        return s.toString();
    }

    private static String check(String mask, LdapName group) {
        try {
            // Same branches, same order, same substrings as LDAPRoleProvider.getRoles.
            if (mask.startsWith("*,")) {
                group.startsWith(new LdapName(mask.substring(2)));
            } else if (mask.endsWith(",*")) {
                group.endsWith(new LdapName(mask.substring(0, mask.length() - 2)));
            } else {
                group.equals(new LdapName(mask));
            }
            return "ACCEPT";
        } catch (Exception e) {
            String message = String.valueOf(e.getMessage()).replaceAll("\\p{Cntrl}", "?");
            return "REFUSE " + e.getClass().getSimpleName() + ": " + message;
        }
    }
}
