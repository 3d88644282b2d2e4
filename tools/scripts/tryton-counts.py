# Prints what a Tryton 6.0 database holds of what the demo syncs, read over
# Tryton's own JSON-RPC (not through Syncline): parties, products and their
# variants, categories, stock on hand in the warehouse WH, and sales.
#
#   /usr/bin/python3 tools/scripts/tryton-counts.py http://127.0.0.1:PORT erp admin admin
#
# Run by demo-erp.sh (and its `counts` command). Debian's python3, which
# Tryton's packages bring, has everything it needs.
import base64
import json
import sys
import urllib.request

url, database, login, password = sys.argv[1:5]
endpoint = url.rstrip('/') + '/' + database + '/'


def rpc(method, params, authorization=None):
    body = json.dumps({'id': 1, 'method': method, 'params': params}).encode()
    headers = {'Content-Type': 'application/json'}
    if authorization:
        headers['Authorization'] = authorization
    request = urllib.request.Request(endpoint, body, headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            reply = json.load(answer)
    except OSError as err:
        sys.exit('tryton-counts: %s at %s: %s' % (method, endpoint, err))
    if reply.get('error'):
        sys.exit('tryton-counts: %s: %s' % (method, reply['error']))
    return reply['result']


uid, session = rpc('common.db.login', [login, {'password': password}, 'en'])
authorization = 'Session ' + base64.b64encode(
    ('%s:%s:%s' % (login, uid, session)).encode()).decode()
context = rpc('model.res.user.get_preferences', [True, {}], authorization)


def call(method, *params):
    return rpc(method, list(params) + [context], authorization)


def count(model, domain=()):
    return call('model.%s.search_count' % model, list(domain))


parties = count('party.party')
customers = count('party.identifier', [['code', 'like', 'syncline:%']])
contacts = count('party.relation.all', [['type.name', '=', 'Contact Person']])
templates = count('product.template')
variants = count('product.product')
categories = count('product.category', [['accounting', '=', False]])

warehouse, = call('model.stock.location.search_read',
                  [['type', '=', 'warehouse'], ['code', '=', 'WH']], 0, 1, None,
                  ['storage_location'])
stock_context = dict(context, locations=[warehouse['storage_location']])
levels = rpc('model.product.product.search_read',
             [[['type', '=', 'goods']], 0, None, None, ['code', 'quantity'], stock_context],
             authorization)
in_stock = [level for level in levels if level['quantity']]

sales = call('model.sale.sale.search_read', [], 0, None, None, ['state'])
states = {}
for sale in sales:
    states[sale['state']] = states.get(sale['state'], 0) + 1

print('  parties     %3d  (%d customers from the shop, %d contact persons of its companies,'
      ' and the ERP company\'s own)' % (parties, customers, contacts))
print('  products    %3d  (%d variants: SKUs)' % (templates, variants))
print('  categories  %3d  (product categories; the accounting category "Goods" aside)' % categories)
print('  stock       %3d  SKUs on hand in warehouse WH, %g units' % (
    len(in_stock), sum(level['quantity'] for level in in_stock)))
print('  sales       %3d  %s' % (len(sales), ', '.join(
    '%d %s' % (n, state) for state, n in sorted(states.items()))))
