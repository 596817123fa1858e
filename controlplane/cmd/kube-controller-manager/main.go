// Command kube-controller-manager is the upstream controller manager, built from the same module as
// kube-apiserver. The local control plane runs only the controllers that clean up after deletions
// (namespace, garbage collector): without them a deleted namespace never empties and owned
// objects are never collected, which is where operators wedge on finalizers.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
