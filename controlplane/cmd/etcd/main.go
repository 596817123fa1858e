// Command etcd is the etcd server at the version kube-apiserver's own module graph pins,
// so the pair is the combination upstream tests together.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
