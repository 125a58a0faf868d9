import csv,glob,statistics,sys,collections
base=sys.argv[1] if len(sys.argv)>1 else '/tmp/dio2'
d=collections.defaultdict(list)  # (setting,image,mode) -> [first_output per invocation median]
allruns=collections.defaultdict(list)
for f in sorted(glob.glob(base+'/*/results.csv')):
    setting=f.split('/')[-2].rsplit('-',1)[0]
    rows=list(csv.DictReader(open(f)))
    per=collections.defaultdict(list)
    for r in rows:
        if r['ok']!='1': continue
        per[(r['image'],r['mode'])].append(float(r['first_output_s']))
    for k,v in per.items():
        d[(setting,)+k].append(statistics.median(v)); allruns[(setting,)+k]+=v
settings=sorted({k[0] for k in d})
keys=sorted({k[1:] for k in d})
print('image mode | '+' | '.join(settings))
for k in keys:
    if k[1]=='native-overlayfs': continue
    cells=[]
    for s in settings:
        v=d.get((s,)+k,[]); a=allruns.get((s,)+k,[])
        cells.append(' '.join('%.2f'%x for x in v)+' (med all %.2f, n=%d)'%(statistics.median(a),len(a)) if a else '-')
    print(k[0],k[1],'|',' | '.join(cells))
