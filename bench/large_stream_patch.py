"""Label patches on a 10,000-tag image stream (issue 14), against a running moor.

    moor serve --data-dir /tmp/d --listen 127.0.0.1:18443 --plain-http &
    python3 bench/large_stream_patch.py "$(awk '/token:/ {print $2}' /tmp/d/kubeconfig)" nofrom
    # "from": the tags name an unreachable registry, so imports fail and write status
    # meanwhile, as on a busy server.
    python3 bench/large_stream_patch.py TOKEN from "$(pgrep -f 'moor serve --data-dir /tmp/d')" 20
    # with moor's pid: its RSS before the create and its peak (VmHWM) after the
    # patches and 20 s more of failing imports.

Prints each patch's time and /healthz latency (polled every 20 ms) while they run.
"""
import json,sys,time,urllib.request,threading
tok=sys.argv[1]; withfrom=sys.argv[2]=="from"; base="http://127.0.0.1:18443"
pid=sys.argv[3] if len(sys.argv)>3 else None; linger=float(sys.argv[4]) if len(sys.argv)>4 else 0
def mib(field):
    with open("/proc/%s/status"%pid) as f:
        return next(int(l.split()[1])//1024 for l in f if l.startswith(field+":"))
rss_before=mib("VmRSS") if pid else None
IS=base+"/apis/image.openshift.io/v1/namespaces/default/imagestreams"
def req(method,url,body=None,ct="application/json"):
    r=urllib.request.Request(url,data=body,method=method,headers={"Authorization":"Bearer "+tok,"Content-Type":ct})
    t=time.time()
    try:
        with urllib.request.urlopen(r) as resp: code=resp.status; resp.read()
    except urllib.error.HTTPError as e: code=e.code; e.read()
    return code,round(time.time()-t,3)
def tag(i):
    t={"name":"t%05d"%i,"annotations":{"note":"tag %d"%i}}
    if withfrom: t["from"]={"kind":"DockerImage","name":"registry.example/app:t%05d"%i}
    return t
obj={"apiVersion":"image.openshift.io/v1","kind":"ImageStream","metadata":{"name":"big"},"spec":{"tags":[tag(i) for i in range(10000)]}}
print("create", req("POST",IS,json.dumps(obj).encode()))
time.sleep(1)
health=[]; stop=False
def poll():
    while not stop:
        t=time.time()
        with urllib.request.urlopen(base+"/healthz") as r: r.read()
        health.append(time.time()-t); time.sleep(0.02)
th=threading.Thread(target=poll); th.start()
for i in range(5):
    print("label patch", req("PATCH",IS+"/big",json.dumps({"metadata":{"labels":{"l%d"%i:"v"}}}).encode(),"application/merge-patch+json"))
stop=True; th.join()
health.sort(); print("healthz during patches: n=%d max=%.1f ms p99=%.1f ms p50=%.1f ms"%(len(health),health[-1]*1000,health[int(len(health)*.99)]*1000,health[len(health)//2]*1000))
if pid:
    time.sleep(linger)
    peak=mib("VmHWM")
    print("moor RSS: %d MiB before the create, peak %d MiB (+%d MiB)"%(rss_before,peak,peak-rss_before))
