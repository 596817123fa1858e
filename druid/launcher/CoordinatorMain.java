/*
 * A trimmed copy of org.apache.druid.cli.Main (Druid 27.0.0) that registers only the Coordinator.
 *
 * Why: Druid's Main registers every command (Hadoop indexer included) with airline, which reflects
 * over each command's fields at start-up. CliInternalHadoopIndexer has a field of a type from
 * druid-indexing-hadoop, whose 27.0.0 jar Maven Central (as reachable from this project's machines)
 * does not serve, so the stock Main dies with NoClassDefFoundError before starting anything.
 * The Coordinator itself never uses that module, so this launcher leaves it out.
 *
 * Usage (same arguments as Druid's Main): java ... druidaccess.CoordinatorMain server coordinator
 * Built by hack/build-druid.sh into lib/druid-access-launcher.jar.
 */
package druidaccess;

import com.github.rvesse.airline.Cli;
import com.github.rvesse.airline.builder.CliBuilder;
import com.github.rvesse.airline.help.Help;
import com.google.inject.Injector;
import java.util.ServiceLoader;
import org.apache.druid.cli.CliCommandCreator;
import org.apache.druid.cli.CliCoordinator;
import org.apache.druid.cli.PropertyChecker;
import org.apache.druid.cli.Version;
import org.apache.druid.guice.ExtensionsLoader;
import org.apache.druid.guice.StartupInjectorBuilder;

public final class CoordinatorMain
{
  private CoordinatorMain()
  {
  }

  @SuppressWarnings("unchecked") // airline's builder API is generic over Class<? extends C>
  public static void main(String[] args)
  {
    for (PropertyChecker checker : ServiceLoader.load(PropertyChecker.class)) {
      checker.checkProperties(System.getProperties());
    }
    final CliBuilder<Runnable> builder = Cli.builder("druid");
    builder.withDescription("Druid Coordinator only (druid-access test launcher).")
           .withDefaultCommand(Help.class)
           .withCommands(Help.class, Version.class);
    builder.withGroup("server")
           .withDescription("Run the Druid Coordinator.")
           .withDefaultCommand(Help.class)
           .withCommands(CliCoordinator.class);

    final Injector injector = new StartupInjectorBuilder().forServer().build();
    final ExtensionsLoader extensionsLoader = ExtensionsLoader.instance(injector);
    for (CliCommandCreator creator : extensionsLoader.getFromExtensions(CliCommandCreator.class)) {
      creator.addCommands(builder);
    }
    final Runnable command = builder.build().parse(args);
    if (!(command instanceof Help)) {
      injector.injectMembers(command);
    }
    command.run();
  }
}
