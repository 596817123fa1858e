/*
 * An empty stand-in for the Multi-Stage Query module of the same name (druid-access test launcher,
 * Druid 37 only; see druid/pom.xml, profile druid-37, and docs/druid-versions.md).
 *
 * Druid 37's CliCoordinator adds this module when the Coordinator is not also the Overlord, but its
 * jar (druid-multi-stage-query) is not served by the Maven Central this project reaches. The Coordinator
 * itself never runs MSQ tasks, so a module that binds nothing lets it start. hack/build-druid.sh
 * compiles it into lib/druid-access-launcher.jar for Druid 37 only.
 */
package org.apache.druid.msq.guice;

import com.google.inject.Binder;
import com.google.inject.Module;

public class MSQDurableStorageModule implements Module
{
  @Override
  public void configure(Binder binder)
  {
    // Deliberately empty: no MSQ bindings on a Coordinator that is not the Overlord.
  }
}
