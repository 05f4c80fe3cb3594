// kfake - franz-go's in-memory fake Kafka (github.com/twmb/franz-go/pkg/kfake)
// on one loopback port, for bench/compare: the same librdkafka client against
// a broker that stores nothing on disk and does almost nothing per request,
// so its figures are the client's own ceiling on this machine.
//
//	kfake PORT       prints the address, runs until SIGTERM/SIGINT
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kfake PORT")
		os.Exit(2)
	}
	port, err := strconv.Atoi(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake: bad port:", err)
		os.Exit(2)
	}
	c, err := kfake.NewCluster(kfake.Ports(port), kfake.NumBrokers(1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(1)
	}
	fmt.Println(c.ListenAddrs()[0])
	s := make(chan os.Signal, 1)
	signal.Notify(s, syscall.SIGTERM, syscall.SIGINT)
	<-s
	c.Close()
}
